// The redcon floor plus the least any limiter that keeps its buckets in memory
// must do: find each command's key in a Go map, adding it when new, and update
// its state there. No bucket maths, no log, no checkpoints. Divided by the bare
// floor, it says how much of the floor one map access per command leaves at
// bench/resp.sh's million random keys.
package main

import (
	"os"

	"github.com/tidwall/redcon"
)

// state is a bucket's size in bucketd's table: a theoretical arrival time and
// a count.
type state struct{ tat, n int64 }

func main() {
	buckets := map[string]state{}
	err := redcon.ListenAndServe(os.Args[1], func(conn redcon.Conn, cmd redcon.Command) {
		if len(cmd.Args) < 2 {
			conn.WriteError("ERR wrong number of arguments")
			return
		}
		s := buckets[string(cmd.Args[1])]
		s.n++
		s.tat += int64(len(cmd.Args))
		buckets[string(cmd.Args[1])] = s
		conn.WriteArray(5)
		conn.WriteInt(0)
		conn.WriteInt(5)
		conn.WriteInt(4)
		conn.WriteInt(-1)
		conn.WriteInt64(s.n)
	}, nil, nil)
	if err != nil {
		os.Stderr.WriteString(err.Error() + "\n")
		os.Exit(1)
	}
}
