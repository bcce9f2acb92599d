// workload is an agent workload attestor: for a PID it gives `uid:<real uid>` (from
// /proc/<pid>/status) and `label:<label from its configuration>`, and counts each attestation through
// the Metrics host service.
package main

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/hashicorp/go-hclog"
	"github.com/spiffe/spire-plugin-sdk/pluginmain"
	"github.com/spiffe/spire-plugin-sdk/pluginsdk"
	metricsv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/hostservice/common/metrics/v1"
	workloadattestorv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/agent/workloadattestor/v1"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"spire-rs.test/spire-plugins/internal/common"
)

type config struct {
	Label string `hcl:"label"`
}

type plugin struct {
	workloadattestorv1.UnimplementedWorkloadAttestorServer
	configv1.UnimplementedConfigServer

	logger  hclog.Logger
	metrics metricsv1.MetricsServiceClient

	mu     sync.RWMutex
	config *config
}

func (p *plugin) SetLogger(logger hclog.Logger) { p.logger = logger }

func (p *plugin) BrokerHostServices(broker pluginsdk.ServiceBroker) error {
	if !broker.BrokerClient(&p.metrics) {
		return fmt.Errorf("Metrics host service is required")
	}
	return nil
}

func (p *plugin) Configure(_ context.Context, req *configv1.ConfigureRequest) (*configv1.ConfigureResponse, error) {
	c := new(config)
	if err := common.Decode(req.HclConfiguration, c); err != nil {
		return nil, err
	}
	p.mu.Lock()
	p.config = c
	p.mu.Unlock()
	common.LogConfigured(p.logger, "workload")
	return &configv1.ConfigureResponse{}, nil
}

func (p *plugin) Validate(_ context.Context, req *configv1.ValidateRequest) (*configv1.ValidateResponse, error) {
	return common.ValidateResponse(common.Decode(req.HclConfiguration, new(config))), nil
}

func (p *plugin) Attest(ctx context.Context, req *workloadattestorv1.AttestRequest) (*workloadattestorv1.AttestResponse, error) {
	p.mu.RLock()
	c := p.config
	p.mu.RUnlock()
	if c == nil {
		return nil, status.Error(codes.FailedPrecondition, "not configured")
	}
	uid, err := realUID(req.Pid)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "pid %d: %v", req.Pid, err)
	}
	if _, err := p.metrics.IncrCounter(ctx, &metricsv1.IncrCounterRequest{
		Key: []string{"test_workload_attestations"}, Val: 1,
	}); err != nil {
		return nil, status.Errorf(codes.Internal, "metrics host service: %v", err)
	}
	return &workloadattestorv1.AttestResponse{
		SelectorValues: []string{"uid:" + uid, "label:" + c.Label},
	}, nil
}

// realUID is the first field of the Uid: line of /proc/<pid>/status.
func realUID(pid int32) (string, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return "", err
	}
	defer f.Close()
	scanner := bufio.NewScanner(f)
	for scanner.Scan() {
		if rest, ok := strings.CutPrefix(scanner.Text(), "Uid:"); ok {
			if fields := strings.Fields(rest); len(fields) > 0 {
				return fields[0], nil
			}
		}
	}
	if err := scanner.Err(); err != nil {
		return "", err
	}
	return "", fmt.Errorf("no Uid line in /proc/%d/status", pid)
}

func main() {
	p := new(plugin)
	pluginmain.Serve(workloadattestorv1.WorkloadAttestorPluginServer(p), configv1.ConfigServiceServer(p))
}
