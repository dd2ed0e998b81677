// Command loss measures what a SIGKILL costs bucketd under --sync interval
// at scale: the age of the oldest answered take that a restart does not
// have.
//
// It starts bucketd (pinned with taskset to -server-cpu), fills it with
// about 950 000 live buckets (redis-benchmark -c 50 -P 16 -r 1000000
// -n 3000000 CL.THROTTLE k:__rand_int__ 100 1 3600, the fill), then
// runs rounds. In each round, pipelined CL.THROTTLEs over the million keys
// churn at full speed (so that the log grows and checkpoints run), and, in
// the rounds marked "saves", SAVE runs in a loop as well (checkpoints back
// to back, so that the kill lands in one). Meanwhile -writers clients take
// one token at a time from a key of their own, each recording when each
// take was answered. After -run and a random part of an interval, bucketd is killed with SIGKILL and started
// again on its files; each writer's key then tells how many of its takes
// survived (its bucket refills one token a day, so the whole part of its
// remaining tokens counts them), and the first one missing is the oldest
// answered take that was lost: its age is the time from its answer to the
// kill.
//
// Usage: bench/loss.sh [ROUNDS] (builds the binaries and pins the tool to
// LOAD_CPU), or go run ./bench/loss -bin PATH.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// capacity of a writer's bucket: more than any round's takes.
const capacity = 1_000_000_000

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "loss:", err)
		os.Exit(1)
	}
}

type config struct {
	bin, serverCPU, loadCPU, dir string
	interval, run                time.Duration
	writers                      int
}

func run() error {
	var c config
	flag.StringVar(&c.bin, "bin", "", "the bucketd binary (required)")
	flag.StringVar(&c.serverCPU, "server-cpu", "0", "the CPU list bucketd runs on (taskset -c)")
	flag.StringVar(&c.loadCPU, "load-cpu", "1", "the CPU list redis-benchmark runs on")
	flag.DurationVar(&c.interval, "sync-interval", time.Second, "bucketd's --sync-interval")
	flag.DurationVar(&c.run, "run", 8*time.Second, "how long each round's takes run before the kill (at most 1m)")
	flag.IntVar(&c.writers, "writers", 4, "clients taking one token at a time, each from its own key")
	rounds := flag.Int("rounds", 6, "rounds; every other one runs SAVE in a loop too")
	keys := flag.Int("keys", 1_000_000, "the fill's key range (-r)")
	fill := flag.Int("fill", 3_000_000, "the fill's requests (-n)")
	flag.Parse()
	if c.bin == "" {
		return errors.New("-bin is required")
	}
	c.run = min(c.run, time.Minute)
	redis.SetLogger(quiet{}) // its dial errors while bucketd restarts
	dir, err := os.MkdirTemp("", "bucketd-loss-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	c.dir = dir

	srv, err := c.start()
	if err != nil {
		return err
	}
	defer func() { srv.kill() }()
	if err := c.bench(srv, "-c", "50", "-P", "16", "-r", strconv.Itoa(*keys), "-n", strconv.Itoa(*fill), "-q").Run(); err != nil {
		return fmt.Errorf("fill: %w", err)
	}
	n, err := srv.rdb.DBSize(context.Background()).Result()
	if err != nil {
		return err
	}
	fmt.Printf("filled: %d live buckets; --sync interval --sync-interval %s; %d writers; %s of takes a round\n",
		n, c.interval, c.writers, c.run)

	var ages []time.Duration
	for r := range *rounds {
		saves := r%2 == 1
		res, next, err := c.round(srv, r, saves, *keys)
		srv = next
		if err != nil {
			return fmt.Errorf("round %d: %w", r+1, err)
		}
		fmt.Printf("round %d (%s): %s\n", r+1, map[bool]string{false: "churn", true: "churn + SAVE loop"}[saves], res)
		ages = append(ages, res.oldest)
	}
	slices.Sort(ages)
	fmt.Printf("oldest answered take lost, over %d rounds: median %s, max %s\n",
		len(ages), ms(ages[len(ages)/2]), ms(ages[len(ages)-1]))
	return nil
}

// server is a running bucketd.
type server struct {
	cmd  *exec.Cmd
	addr string
	rdb  *redis.Client
}

func (s *server) kill() {
	if s == nil {
		return
	}
	s.rdb.Close()
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// start runs bucketd on the data in c.dir and returns once it answers PING.
func (c *config) start() (*server, error) {
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	cmd := exec.Command("taskset", "-c", c.serverCPU, c.bin,
		"--data", filepath.Join(c.dir, "bucketd.db"), "--sync", "interval",
		"--sync-interval", c.interval.String(), "--resp-addr", addr, "--http-addr", "127.0.0.1:0")
	logf, err := os.OpenFile(filepath.Join(c.dir, "bucketd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	s := &server{cmd: cmd, addr: addr, rdb: redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1})}
	deadline := time.Now().Add(2 * time.Minute)
	for s.rdb.Ping(context.Background()).Err() != nil {
		if time.Now().After(deadline) {
			s.kill()
			log, _ := os.ReadFile(filepath.Join(c.dir, "bucketd.log"))
			return nil, fmt.Errorf("bucketd did not answer within 2 minutes; its log:\n%s", log)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return s, nil
}

// bench returns redis-benchmark's CL.THROTTLE over the key range, pinned.
func (c *config) bench(s *server, args ...string) *exec.Cmd {
	host, port, _ := net.SplitHostPort(s.addr)
	args = append([]string{"-c", c.loadCPU, "redis-benchmark", "-h", host, "-p", port}, args...)
	args = append(args, "CL.THROTTLE", "k:__rand_int__", "100", "1", "3600")
	return exec.Command("taskset", args...)
}

type result struct {
	answered, lost int
	oldest         time.Duration // 0 when none was lost
	restart        time.Duration
	saves          int
}

func (r result) String() string {
	lost := "none lost"
	if r.lost > 0 {
		lost = fmt.Sprintf("%d lost, the oldest answered %s before the kill", r.lost, ms(r.oldest))
	}
	s := fmt.Sprintf("%d takes answered, %s; restart to PING %s", r.answered, lost, ms(r.restart))
	if r.saves > 0 {
		s += fmt.Sprintf("; %d SAVEs done before the kill", r.saves)
	}
	return s
}

// round runs one round on s and returns its result and the restarted
// server.
func (c *config) round(s *server, r int, saves bool, keys int) (result, *server, error) {
	churn := c.bench(s, "-c", "50", "-P", "16", "-r", strconv.Itoa(keys), "-n", "1000000000", "-q")
	if err := churn.Start(); err != nil {
		return result{}, s, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	nsaves := 0
	if saves {
		wg.Go(func() {
			for ctx.Err() == nil && s.rdb.Save(ctx).Err() == nil {
				nsaves++
			}
		})
	}
	answered := make([][]time.Time, c.writers)
	for w := range c.writers {
		wg.Go(func() {
			rdb := redis.NewClient(&redis.Options{Addr: s.addr, MaxRetries: -1, PoolSize: 1})
			defer rdb.Close()
			key := writerKey(r, w)
			for ctx.Err() == nil {
				v, err := rdb.Do(ctx, "CL.THROTTLE", key, capacity-1, 1, 86400).Slice()
				if err != nil || len(v) != 5 || v[0] != int64(0) {
					return // the kill, or a refusal: the takes answered so far count
				}
				answered[w] = append(answered[w], time.Now())
			}
		})
	}
	// The kill falls anywhere within an interval of the log's writes.
	time.Sleep(c.run + rand.N(c.interval))
	killed := time.Now()
	s.cmd.Process.Signal(syscall.SIGKILL)
	s.cmd.Wait()
	cancel()
	wg.Wait()
	churn.Process.Kill()
	churn.Wait()
	s.rdb.Close()

	res := result{saves: nsaves}
	t0 := time.Now()
	next, err := c.start()
	if err != nil {
		return res, nil, err
	}
	res.restart = time.Since(t0)
	for w, times := range answered {
		v, err := next.rdb.Do(context.Background(), "CL.THROTTLE", writerKey(r, w), capacity-1, 1, 86400, 0).Slice()
		if err != nil {
			return res, next, err
		}
		kept := capacity - int(v[2].(int64))
		res.answered += len(times)
		if kept < len(times) {
			res.lost += len(times) - kept
			res.oldest = max(res.oldest, killed.Sub(times[kept]))
		}
	}
	return res, next, nil
}

type quiet struct{}

func (quiet) Printf(context.Context, string, ...any) {}

func writerKey(round, w int) string { return fmt.Sprintf("loss:%d:%d", round, w) }

func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func ms(d time.Duration) string { return fmt.Sprintf("%.0f ms", float64(d)/float64(time.Millisecond)) }
