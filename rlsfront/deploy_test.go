package rlsfront_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	ratelimitfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ratelimit/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/stretchr/testify/require"
	yaml "go.yaml.in/yaml/v4"
	"google.golang.org/protobuf/encoding/protojson"
)

// TestDeployEnvoyConfig checks deploy/envoy.yaml, the README's example,
// without an Envoy binary (none is packaged in the registries reached
// here): it must decode as a v3 Bootstrap with go-control-plane's types,
// with no unknown field, pass their generated validation, and point the
// ratelimit filter at the cluster that reaches bucketd's gRPC address.
func TestDeployEnvoyConfig(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "deploy", "envoy.yaml"))
	require.NoError(t, err)
	var doc any
	require.NoError(t, yaml.Unmarshal(data, &doc))
	js, err := json.Marshal(doc)
	require.NoError(t, err)
	var b bootstrapv3.Bootstrap
	require.NoError(t, protojson.UnmarshalOptions{}.Unmarshal(js, &b))
	require.NoError(t, b.ValidateAll())

	l := b.GetStaticResources().GetListeners()[0]
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	require.NoError(t, hcm.ValidateAll())
	var rl ratelimitfilterv3.RateLimit
	require.NoError(t, hcm.GetHttpFilters()[0].GetTypedConfig().UnmarshalTo(&rl))
	require.NoError(t, rl.ValidateAll())
	require.Equal(t, "edge", rl.GetDomain())
	cluster := rl.GetRateLimitService().GetGrpcService().GetEnvoyGrpc().GetClusterName()
	var found bool
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == cluster {
			found = true
			sa := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
			require.Equal(t, uint32(8081), sa.GetPortValue())
		}
	}
	require.True(t, found, "no cluster %q", cluster)
}
