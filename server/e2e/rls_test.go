package e2e_test

import (
	"context"
	"os"
	"path/filepath"
	"regexp"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"

	commonv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/common/ratelimit/v3"
	rlsv3 "github.com/envoyproxy/go-control-plane/envoy/service/ratelimit/v3"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"
	"google.golang.org/grpc/status"
)

// These tests drive the binary's gRPC front (Envoy's rate limit service)
// with the Go client generated in go-control-plane, through the descriptor
// examples of envoyproxy/ratelimit's README, kept in testdata/rls/readme
// with their origin.

var grpcRE = regexp.MustCompile(` grpc=(\S+)`)

// startRLS starts bucketd with the gRPC front on port 0 and the RLS
// configuration in dir, and returns it and a client.
func startRLS(t *testing.T, dir string, args ...string) (*proc, rlsv3.RateLimitServiceClient, *grpc.ClientConn) {
	t.Helper()
	p := startBinary(t, append([]string{"--data", filepath.Join(t.TempDir(), "b.db"), "--grpc-addr", "127.0.0.1:0", "--rls-config", dir}, args...)...)
	m := grpcRE.FindStringSubmatch(p.startLine)
	require.NotNil(t, m, p.startLine)
	conn, err := grpc.NewClient(m[1], grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close() })
	return p, rlsv3.NewRateLimitServiceClient(conn), conn
}

// readmeDir copies testdata/rls/readme into a new directory, so that a
// test may change it.
func readmeDir(t *testing.T) string {
	t.Helper()
	root, err := moduleRoot()
	require.NoError(t, err)
	src := filepath.Join(root, "testdata", "rls", "readme")
	dst := t.TempDir()
	ents, err := os.ReadDir(src)
	require.NoError(t, err)
	for _, e := range ents {
		b, err := os.ReadFile(filepath.Join(src, e.Name()))
		require.NoError(t, err)
		require.NoError(t, os.WriteFile(filepath.Join(dst, e.Name()), b, 0o600))
	}
	return dst
}

func rlsDesc(kv ...string) *commonv3.RateLimitDescriptor {
	d := &commonv3.RateLimitDescriptor{}
	for i := 0; i+1 < len(kv); i += 2 {
		d.Entries = append(d.Entries, &commonv3.RateLimitDescriptor_Entry{Key: kv[i], Value: kv[i+1]})
	}
	return d
}

// ask calls ShouldRateLimit and fails the test on error.
func ask(t *testing.T, c rlsv3.RateLimitServiceClient, domain string, ds ...*commonv3.RateLimitDescriptor) *rlsv3.RateLimitResponse {
	t.Helper()
	resp, err := c.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: domain, Descriptors: ds})
	require.NoError(t, err)
	require.Len(t, resp.GetStatuses(), len(ds))
	return resp
}

const (
	ok   = rlsv3.RateLimitResponse_OK
	over = rlsv3.RateLimitResponse_OVER_LIMIT
)

func TestBinaryRLSReadmeExamples(t *testing.T) {
	p, c, _ := startRLS(t, readmeDir(t))

	t.Run("example 2: nested descriptors", func(t *testing.T) {
		marketing := rlsDesc("message_type", "marketing", "to_number", "2061111111")
		for i := range 5 {
			resp := ask(t, c, "messaging", marketing, rlsDesc("to_number", "2061111111"))
			require.Equal(t, ok, resp.GetOverallCode(), "message %d", i)
		}
		resp := ask(t, c, "messaging", marketing, rlsDesc("to_number", "2061111111"))
		assert.Equal(t, over, resp.GetOverallCode())
		assert.Equal(t, over, resp.GetStatuses()[0].GetCode())
		assert.Equal(t, uint32(95), resp.GetStatuses()[1].GetLimitRemaining(), "the refused message took nothing")
		hs := map[string]string{}
		for _, h := range resp.GetResponseHeadersToAdd() {
			hs[h.GetKey()] = h.GetValue()
		}
		assert.Equal(t, `"message_type_marketing.to_number-1";q=5;w=86400, "to_number-2";q=100;w=86400`, hs["RateLimit-Policy"])
		assert.Regexp(t, `^"message_type_marketing.to_number-1";r=0;t=\d+, "to_number-2";r=95;t=\d+$`, hs["RateLimit"])
		assert.Regexp(t, `^1728\d$`, hs["Retry-After"], "a fifth of a day")
		// Another number has its own marketing bucket.
		assert.Equal(t, ok, ask(t, c, "messaging", rlsDesc("message_type", "marketing", "to_number", "2062222222")).GetOverallCode())
	})
	t.Run("example 3: most specific wins", func(t *testing.T) {
		assert.Equal(t, over, ask(t, c, "edge_proxy_per_ip", rlsDesc("remote_address", "50.0.0.5")).GetOverallCode())
		for range 10 {
			require.Equal(t, ok, ask(t, c, "edge_proxy_per_ip", rlsDesc("remote_address", "50.0.0.1")).GetOverallCode())
		}
	})
	t.Run("example 4: depth must match", func(t *testing.T) {
		resp := ask(t, c, "example4", rlsDesc("key", "value"))
		assert.Nil(t, resp.GetStatuses()[0].GetCurrentLimit())
		resp = ask(t, c, "example4", rlsDesc("key", "value", "subkey", "subvalue"))
		assert.Equal(t, uint32(300), resp.GetStatuses()[0].GetCurrentLimit().GetRequestsPerUnit())
	})
	t.Run("example 5: unlimited", func(t *testing.T) {
		for range 200 {
			resp := ask(t, c, "internal", rlsDesc("ldap", "a"))
			require.Equal(t, ok, resp.GetOverallCode())
			require.Equal(t, uint32(1<<32-1), resp.GetStatuses()[0].GetLimitRemaining())
		}
	})
	t.Run("example 6: shadow mode", func(t *testing.T) {
		for range 15 {
			require.Equal(t, ok, ask(t, c, "example6", rlsDesc("service", "auth-service", "user", "user-a")).GetOverallCode())
		}
		for range 20 {
			require.Equal(t, ok, ask(t, c, "example6", rlsDesc("service", "auth-service", "user", "user-b")).GetOverallCode())
		}
		assert.Equal(t, over, ask(t, c, "example6", rlsDesc("service", "auth-service", "user", "user-b")).GetOverallCode())
	})
	t.Run("example 7: replaces", func(t *testing.T) {
		both := []*commonv3.RateLimitDescriptor{rlsDesc("key_1", "value_1", "user", "bkthomps"), rlsDesc("key_2", "value_2", "user", "bkthomps")}
		for i := range 10 {
			resp := ask(t, c, "example7", both...)
			require.Equal(t, ok, resp.GetOverallCode(), "request %d", i)
			require.Nil(t, resp.GetStatuses()[0].GetCurrentLimit(), "replaced")
		}
		assert.Equal(t, over, ask(t, c, "example7", both...).GetOverallCode())
		resp := ask(t, c, "example7", rlsDesc("key_1", "value_1", "user", "bkthomps"))
		assert.Equal(t, uint32(4), resp.GetStatuses()[0].GetLimitRemaining(), "the replaced 5/s was not taken from")
	})
	t.Run("buckets visible over RESP", func(t *testing.T) {
		rdb := redis.NewClient(&redis.Options{Addr: p.respAddr})
		defer rdb.Close()
		ctx := context.Background()
		key := "message_type_marketing.to_number_2061111111"
		h, err := rdb.HGetAll(ctx, key).Result()
		require.NoError(t, err)
		assert.Equal(t, "rls:messaging", h["policy"])
		assert.Regexp(t, `^0(\.\d+)?$`, h["tokens"], "empty, refilling")
		keys, err := rdb.Keys(ctx, "message_type_*").Result()
		require.NoError(t, err)
		assert.ElementsMatch(t, []string{key, "message_type_marketing.to_number_2062222222"}, keys)
		code, body := get(t, "http://"+p.httpAddr+"/v1/buckets?prefix=message_type_")
		assert.Equal(t, 200, code)
		assert.Contains(t, body, key)
	})
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestBinaryRLSConcurrentExact: concurrent calls on one bucket allow
// exactly its capacity.
func TestBinaryRLSConcurrentExact(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "d.yaml", "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 100}\n")
	p, c, _ := startRLS(t, dir, "--resp-addr", "")
	const clients, each = 16, 25
	var allowed, failed atomic.Int64
	var wg sync.WaitGroup
	for range clients {
		wg.Go(func() {
			for range each {
				resp, err := c.ShouldRateLimit(context.Background(), &rlsv3.RateLimitRequest{Domain: "d", Descriptors: []*commonv3.RateLimitDescriptor{rlsDesc("k", "v")}})
				switch {
				case err != nil:
					failed.Add(1)
				case resp.GetOverallCode() == ok:
					allowed.Add(1)
				}
			}
		})
	}
	wg.Wait()
	assert.Zero(t, failed.Load())
	assert.Equal(t, int64(100), allowed.Load(), "of %d calls", clients*each)
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestBinaryRLSReload: SIGHUP reloads the directory without resetting a
// bucket; an invalid directory keeps the old configuration.
func TestBinaryRLSReload(t *testing.T) {
	dir := t.TempDir()
	writeFile(t, dir, "d.yaml", "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 5}\n")
	p, c, _ := startRLS(t, dir, "--resp-addr", "")
	for range 3 {
		require.Equal(t, ok, ask(t, c, "d", rlsDesc("k", "v")).GetOverallCode())
	}
	writeFile(t, dir, "d.yaml", "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: hour, requests_per_unit: 10}\n")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	p.log.wait(t, regexp.MustCompile(`msg="rls configuration reloaded".* rls_domains=d`))
	resp := ask(t, c, "d", rlsDesc("k", "v"))
	assert.Equal(t, uint32(10), resp.GetStatuses()[0].GetCurrentLimit().GetRequestsPerUnit())
	assert.Equal(t, uint32(1), resp.GetStatuses()[0].GetLimitRemaining(), "2 tokens kept, 1 taken: not reset")

	writeFile(t, dir, "d.yaml", "domain: d\ndescriptors:\n  - key: k\n    rate_limit: {unit: fortnight, requests_per_unit: 10}\n")
	require.NoError(t, p.cmd.Process.Signal(syscall.SIGHUP))
	p.log.wait(t, regexp.MustCompile(`msg="rls reload failed, the old configuration stays in force".*d.yaml:4:24: descriptors\[0\].rate_limit.unit: invalid rate limit unit 'fortnight'`))
	resp = ask(t, c, "d", rlsDesc("k", "v"))
	assert.Equal(t, uint32(10), resp.GetStatuses()[0].GetCurrentLimit().GetRequestsPerUnit())
	assert.Equal(t, uint32(0), resp.GetStatuses()[0].GetLimitRemaining())
	assert.Equal(t, over, ask(t, c, "d", rlsDesc("k", "v")).GetOverallCode())
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestBinaryRLSHealthReflectionErrors: the health service and reflection
// answer, and bad requests are InvalidArgument.
func TestBinaryRLSHealthReflectionErrors(t *testing.T) {
	p, c, conn := startRLS(t, readmeDir(t), "--resp-addr", "")
	ctx := context.Background()
	hr, err := healthpb.NewHealthClient(conn).Check(ctx, &healthpb.HealthCheckRequest{Service: "envoy.service.ratelimit.v3.RateLimitService"})
	require.NoError(t, err)
	assert.Equal(t, healthpb.HealthCheckResponse_SERVING, hr.GetStatus())

	stream, err := reflectionpb.NewServerReflectionClient(conn).ServerReflectionInfo(ctx)
	require.NoError(t, err)
	require.NoError(t, stream.Send(&reflectionpb.ServerReflectionRequest{
		MessageRequest: &reflectionpb.ServerReflectionRequest_FileContainingSymbol{FileContainingSymbol: "envoy.service.ratelimit.v3.RateLimitService"},
	}))
	rr, err := stream.Recv()
	require.NoError(t, err)
	assert.NotEmpty(t, rr.GetFileDescriptorResponse().GetFileDescriptorProto())
	require.NoError(t, stream.CloseSend())

	for name, req := range map[string]*rlsv3.RateLimitRequest{
		"empty domain":   {Descriptors: []*commonv3.RateLimitDescriptor{rlsDesc("a", "b")}},
		"no descriptors": {Domain: "messaging"},
		"no entries":     {Domain: "messaging", Descriptors: []*commonv3.RateLimitDescriptor{{}}},
	} {
		_, err := c.ShouldRateLimit(ctx, req)
		assert.Equal(t, codes.InvalidArgument, status.Code(err), "%s: %v", name, err)
	}
	assert.Equal(t, 0, p.stop(t, syscall.SIGTERM))
}

// TestBinaryRLSCheckConfig: --check-config with a directory checks it as an
// RLS configuration, and a bad one is reported with file, line and column;
// a bad --rls-config stops the start.
func TestBinaryRLSCheckConfig(t *testing.T) {
	dir := readmeDir(t)
	code, stdout, stderr := runBinary(t, t.TempDir(), nil, "--check-config", dir)
	assert.Equal(t, 0, code, stderr)
	assert.Regexp(t, `: ok, \d+ rate limits in 11 domains: edge_proxy_per_ip, example10, `, stdout)

	bad := t.TempDir()
	writeFile(t, bad, "x.yaml", "domain: x\ndescriptors:\n  - key: a\n    ratelimit: {unit: second}\n")
	code, _, stderr = runBinary(t, t.TempDir(), nil, "--check-config", bad)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "x.yaml:4:5: descriptors[0].ratelimit: config error, unknown key 'ratelimit'")

	policies := writeFile(t, t.TempDir(), "p.yaml", "policies:\n  free: {capacity: 1, rate: 1/h}\n")
	code, stdout, stderr = runBinary(t, t.TempDir(), nil, "--check-config", policies, "--rls-config", bad)
	assert.Equal(t, 1, code, "both are checked")
	assert.Contains(t, stdout, "p.yaml: ok")
	assert.Contains(t, stderr, "unknown key 'ratelimit'")

	code, _, stderr = runBinary(t, t.TempDir(), nil, "--http-addr", "127.0.0.1:0", "--resp-addr", "", "--rls-config", bad)
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "unknown key 'ratelimit'")
}
