package respcompat

import "bytes"

// Limits on one client request. Redis allows far more (512 MB strings, a
// million arguments); bucketd's commands are a few short words, and small
// limits keep what one connection can make the server hold small and known
// in advance: a request over a limit is refused as soon as its header or its
// first bytes show it, before its body is read.
const (
	// MaxCommandSize is the most bytes one command may take on the wire,
	// framing included, inline or RESP.
	MaxCommandSize = 64 << 10
	// MaxArgs is the most arguments in one command, its name included.
	MaxArgs = 1024
)

// maxHeaderDigits is the most digits in a "*N" or "$N" header: any more can
// only be a number over the limits, and stopping there bounds the header.
const maxHeaderDigits = 18

// protocolError is a malformed or oversized request. The client is answered
// "-ERR Protocol error: <msg>" and disconnected, as Redis does.
type protocolError string

func (e protocolError) Error() string { return "Protocol error: " + string(e) }

// The texts are Redis's (networking.c), so that clients and people who know
// them recognise them.
const (
	errBigInline    = protocolError("too big inline request")
	errMultibulkLen = protocolError("invalid multibulk length")
	errBulkLen      = protocolError("invalid bulk length")
	errUnbalanced   = protocolError("unbalanced quotes in request")
)

// framer states.
const (
	stCommand = iota // at the first byte of a command
	stInline         // in an inline command, before its '\n'
	stCount          // in "*N\r\n", after the '*'
	stDollar         // at the '$' of the next argument
	stLength         // in "$N\r\n", after the '$'
	stBody           // in an argument's bytes
	stBodyCR         // at the '\r' after an argument
	stBodyLF         // at the '\n' after an argument
)

// framer finds where the commands in a byte stream end, and enforces the
// limits, without keeping any of the bytes: it is fed each chunk as it is
// read and carries only a few counters across chunks. It splits commands as
// Redis and redcon do (a command starting with '*' is RESP, anything else an
// inline line ending in '\n'), so that each complete command it reports
// parses with redcon.ReadNextCommand (run splits RESP ones itself, with
// splitCommand, into the same arguments), and it refuses what redcon would
// misread (a negative bulk length). An empty command ("*0", "*-1") is a
// command of its own, which the server skips as Redis does.
//
// The zero value is ready for the first command.
type framer struct {
	state  uint8
	cr     bool // in a header: the '\r' has been seen
	neg    bool // in a "*N" header: N has a '-'
	digits int  // in a header: digits so far
	num    int  // in a header: their value
	size   int  // bytes of the current command so far; never more than MaxCommandSize
	args   int  // arguments of the current command still to come
	body   int  // bytes of the current argument still to come
}

// scan advances over b, the next bytes of the stream. It returns the offset
// in b just past the last command that ends in b, or 0 if none does. On a
// protocol error it returns, with the error, the end of the last complete
// command before the bad one; the framer must not be used after that.
func (f *framer) scan(b []byte) (end int, err error) {
	for i := 0; i < len(b); {
		switch f.state {
		case stCommand:
			f.size = 0
			if n := wholeCommand(b[i:]); n > 0 {
				// The usual case, a whole command in b, at once.
				i += n
				end = i
				continue
			}
			if b[i] == '*' {
				f.state, f.cr, f.neg, f.digits, f.num = stCount, false, false, 0, 0
				f.size++
				i++
			} else {
				f.state = stInline
			}
		case stInline:
			j := bytes.IndexByte(b[i:], '\n')
			if j < 0 {
				f.size += len(b) - i
				if f.size > MaxCommandSize {
					return end, errBigInline
				}
				return end, nil
			}
			f.size += j + 1
			if f.size > MaxCommandSize {
				return end, errBigInline
			}
			i += j + 1
			f.state = stCommand
			end = i
		case stCount, stLength:
			lenErr := errBulkLen
			if f.state == stCount {
				lenErr = errMultibulkLen
			}
			// The header's bytes, in a tight loop: this is most of the
			// scanning of a short command.
			done := false
			for i < len(b) && !done {
				c := b[i]
				i++
				f.size++
				switch {
				case f.size > MaxCommandSize:
					return end, lenErr
				case f.cr:
					if c != '\n' {
						return end, lenErr
					}
					done = true
				case c == '\r' && f.digits > 0:
					f.cr = true
				case c >= '0' && c <= '9' && f.digits < maxHeaderDigits:
					f.num = f.num*10 + int(c-'0')
					f.digits++
				case c == '-' && f.state == stCount && f.digits == 0 && !f.neg:
					f.neg = true
				default: // a sign, a space, a letter, too many digits, no digits
					return end, lenErr
				}
			}
			if !done {
				continue
			}
			if f.state == stCount {
				switch {
				case f.neg || f.num == 0:
					// "*0" or "*-1": an empty command, which Redis skips.
					f.state = stCommand
					end = i
				case f.num > MaxArgs:
					return end, errMultibulkLen
				default:
					f.args, f.state = f.num, stDollar
				}
				continue
			}
			if f.size+f.num+2 > MaxCommandSize {
				return end, errBulkLen
			}
			f.body, f.state = f.num, stBody
		case stDollar:
			if b[i] != '$' {
				return end, protocolError("expected '$', got '" + string(b[i:i+1]) + "'")
			}
			f.state, f.cr, f.digits, f.num = stLength, false, 0, 0
			f.size++
			i++
			if f.size > MaxCommandSize {
				return end, errBulkLen
			}
		case stBody:
			n := min(f.body, len(b)-i)
			f.body -= n
			f.size += n
			i += n
			if f.body > 0 {
				continue
			}
			f.state = stBodyCR
			if i+1 < len(b) { // the usual case: the CRLF is here too
				if b[i] != '\r' || b[i+1] != '\n' {
					return end, errBulkLen
				}
				i += 2
				f.size += 2
				f.state = f.nextArg()
				if f.state == stCommand {
					end = i
				}
			}
		case stBodyCR, stBodyLF:
			want := byte('\r')
			if f.state == stBodyLF {
				want = '\n'
			}
			if b[i] != want {
				return end, errBulkLen
			}
			i++
			f.size++
			if f.state == stBodyCR {
				f.state = stBodyLF
				continue
			}
			f.state = f.nextArg()
			if f.state == stCommand {
				end = i
			}
		}
	}
	return end, nil
}

// wholeCommand returns the length of the RESP command that p starts with
// when p holds all of it and it is well formed, of at least one argument
// and within the limits: the usual case, which it checks in one pass over
// the headers. Otherwise it returns 0, and scan's state machine reads the
// command a byte at a time, as it reads one cut across reads, and says
// what is wrong with it. The two agree on every command (FuzzFramer feeds
// each stream whole and a byte at a time).
func wholeCommand(p []byte) int {
	return splitWhole(p, nil)
}

// splitCommand returns the arguments of the RESP command that p starts
// with, appended to args[:0] and aliasing p, and its length, in one pass
// over its headers; 0 when wholeCommand would not frame it. Every command
// that scan frames, but for the empty ones, is one that wholeCommand frames
// too (FuzzFramer checks this, and that redcon finds the same arguments).
func splitCommand(p []byte, args [][]byte) ([][]byte, int) {
	args = args[:0]
	n := splitWhole(p, &args)
	return args, n
}

// splitWhole is wholeCommand, which also appends the arguments to *args
// when args is not nil (what it appended is garbage when it returns 0).
func splitWhole(p []byte, args *[][]byte) int {
	if len(p) == 0 || p[0] != '*' {
		return 0
	}
	n, i := headerNum(p, 1)
	if n < 1 || n > MaxArgs {
		return 0
	}
	for range n {
		if i >= len(p) || p[i] != '$' {
			return 0
		}
		var l int
		if l, i = headerNum(p, i+1); l < 0 || l > MaxCommandSize {
			return 0
		}
		start := i
		i += l + 2
		if i > len(p) || i > MaxCommandSize || p[i-2] != '\r' || p[i-1] != '\n' {
			return 0
		}
		if args != nil {
			*args = append(*args, p[start:i-2])
		}
	}
	return i
}

// headerNum reads the number of a header, one to maxHeaderDigits digits
// from p[i] then "\r\n", and returns it and the offset after the header;
// -1 when p has no such header there.
func headerNum(p []byte, i int) (n, next int) {
	start := i
	for ; i < len(p) && p[i] >= '0' && p[i] <= '9'; i++ {
		n = n*10 + int(p[i]-'0')
	}
	if d := i - start; d == 0 || d > maxHeaderDigits || i+1 >= len(p) || p[i] != '\r' || p[i+1] != '\n' {
		return -1, 0
	}
	return n, i + 2
}

// nextArg counts an argument done and returns the state after it.
func (f *framer) nextArg() uint8 {
	f.args--
	if f.args > 0 {
		return stDollar
	}
	return stCommand
}

// splitInline splits an inline command line (without its line ending) into
// arguments as Redis's sdssplitargs does: words separated by spaces or
// tabs; "double quotes" with \n \r \t \b \a \\ \" and \xHH escapes; 'single
// quotes' with \' escaped; a closing quote must be followed by a space or
// the end. The arguments are appended to args[:0] and point into a copy of
// line, never into line itself.
func splitInline(line []byte, args [][]byte) ([][]byte, error) {
	args = args[:0]
	buf := make([]byte, 0, len(line))
	i := 0
	for {
		for i < len(line) && isSpace(line[i]) {
			i++
		}
		if i == len(line) {
			return args, nil
		}
		start := len(buf)
		var inDouble, inSingle, done bool
		for !done {
			if i == len(line) {
				if inDouble || inSingle {
					return args[:0], errUnbalanced
				}
				break
			}
			c := line[i]
			switch {
			case inDouble:
				switch {
				case c == '\\' && i+3 < len(line) && line[i+1] == 'x' && isHex(line[i+2]) && isHex(line[i+3]):
					buf = append(buf, unhex(line[i+2])<<4|unhex(line[i+3]))
					i += 3
				case c == '\\' && i+1 < len(line):
					i++
					switch e := line[i]; e {
					case 'n':
						buf = append(buf, '\n')
					case 'r':
						buf = append(buf, '\r')
					case 't':
						buf = append(buf, '\t')
					case 'b':
						buf = append(buf, '\b')
					case 'a':
						buf = append(buf, '\a')
					default:
						buf = append(buf, e)
					}
				case c == '"':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return args[:0], errUnbalanced
					}
					done = true
				default:
					buf = append(buf, c)
				}
			case inSingle:
				switch {
				case c == '\\' && i+1 < len(line) && line[i+1] == '\'':
					i++
					buf = append(buf, '\'')
				case c == '\'':
					if i+1 < len(line) && !isSpace(line[i+1]) {
						return args[:0], errUnbalanced
					}
					done = true
				default:
					buf = append(buf, c)
				}
			default:
				switch c {
				case ' ', '\t', '\n', '\r', 0:
					done = true
				case '"':
					inDouble = true
				case '\'':
					inSingle = true
				default:
					buf = append(buf, c)
				}
			}
			i++
		}
		args = append(args, buf[start:len(buf):len(buf)])
	}
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f'
}

func isHex(c byte) bool {
	return c >= '0' && c <= '9' || c >= 'a' && c <= 'f' || c >= 'A' && c <= 'F'
}

func unhex(c byte) byte {
	switch {
	case c >= 'a':
		return c - 'a' + 10
	case c >= 'A':
		return c - 'A' + 10
	}
	return c - '0'
}
