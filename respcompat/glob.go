package respcompat

// globMatch reports whether s matches the glob pattern as Redis's
// stringmatchlen does (KEYS, SCAN MATCH, CONFIG GET): '*' any bytes, '?'
// one byte, '[abc]', '[^a]' and '[a-z]' classes (a range may be given
// backwards; '\' escapes within one; an unclosed class runs to the end of
// the pattern), '\' escapes the next byte. Matching is by byte and case
// sensitive. As in Redis, a '*' that found no match for the rest of the
// pattern at any place in the rest of s stops every earlier '*' from trying
// longer matches, so the work is at most about len(pattern) * len(s), and
// nesting past 1000 '*' matches nothing.
func globMatch(s, pattern string) bool {
	if pattern == "*" {
		return true
	}
	skip := false
	return stringMatch(pattern, s, &skip, 0)
}

// maxGlobNesting is Redis's bound on the '*' recursion.
const maxGlobNesting = 1000

// stringMatch is Redis's stringmatchlen_impl (src/util.c), with indexes for
// its pointers: p[pi:] is the pattern left, s[si:] the string left. at reads
// past the end as the C code reads the terminating NUL.
func stringMatch(p, s string, skipLonger *bool, nesting int) bool {
	if nesting > maxGlobNesting {
		return false
	}
	at := func(i int) byte {
		if i >= 0 && i < len(p) {
			return p[i]
		}
		return 0
	}
	pi, si := 0, 0
	for pi < len(p) && si < len(s) {
		switch p[pi] {
		case '*':
			for pi < len(p) && at(pi+1) == '*' {
				pi++
			}
			if len(p)-pi == 1 {
				return true
			}
			for si < len(s) {
				if stringMatch(p[pi+1:], s[si:], skipLonger, nesting+1) {
					return true
				}
				if *skipLonger {
					return false
				}
				si++
			}
			*skipLonger = true
			return false
		case '?':
			si++
		case '[':
			pi++
			not := at(pi) == '^'
			if not {
				pi++
			}
			match := false
			for {
				if at(pi) == '\\' && len(p)-pi >= 2 {
					pi++
					if p[pi] == s[si] {
						match = true
					}
				} else if at(pi) == ']' {
					break
				} else if pi >= len(p) {
					pi-- // unclosed: the step after the switch lands at the end
					break
				} else if len(p)-pi >= 3 && p[pi+1] == '-' {
					lo, hi := p[pi], p[pi+2]
					if lo > hi {
						lo, hi = hi, lo
					}
					pi += 2
					if s[si] >= lo && s[si] <= hi {
						match = true
					}
				} else if p[pi] == s[si] {
					match = true
				}
				pi++
			}
			if not {
				match = !match
			}
			if !match {
				return false
			}
			si++
		case '\\':
			if len(p)-pi >= 2 {
				pi++
			}
			fallthrough
		default:
			if p[pi] != s[si] {
				return false
			}
			si++
		}
		pi++
		if si == len(s) {
			for at(pi) == '*' {
				pi++
			}
			break
		}
	}
	return pi >= len(p) && si == len(s)
}
