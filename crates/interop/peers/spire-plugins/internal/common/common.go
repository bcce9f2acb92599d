// Package common holds what every test plugin does the same way: decode its HCL configuration the
// way spire-plugin-sdk plugins do, log that it was configured (the end-to-end tests look for that
// line in the daemon's log), and write a bundle's X.509 roots as PEM.
package common

import (
	"encoding/pem"
	"os"

	"github.com/hashicorp/go-hclog"
	"github.com/hashicorp/hcl"
	"github.com/spiffe/spire-plugin-sdk/proto/spire/plugin/types"
	configv1 "github.com/spiffe/spire-plugin-sdk/proto/spire/service/common/config/v1"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// ConfiguredMessage is the Info line every plugin logs from a successful Configure.
const ConfiguredMessage = "test plugin configured"

// Decode parses HCL plugin data into config (a pointer to a struct with `hcl` tags), answering
// InvalidArgument as SDK plugins do when it does not parse.
func Decode(hclText string, config interface{}) error {
	if err := hcl.Decode(config, hclText); err != nil {
		return status.Errorf(codes.InvalidArgument, "failed to decode configuration: %v", err)
	}
	return nil
}

// TrustDomain is the trust domain from the core configuration, or InvalidArgument when absent.
func TrustDomain(core *configv1.CoreConfiguration) (string, error) {
	if core.GetTrustDomain() == "" {
		return "", status.Error(codes.InvalidArgument, "core configuration is missing the trust domain")
	}
	return core.GetTrustDomain(), nil
}

// LogConfigured logs ConfiguredMessage at Info with the plugin's name.
func LogConfigured(logger hclog.Logger, plugin string) {
	if logger != nil {
		logger.Info(ConfiguredMessage, "test_plugin", plugin)
	}
}

// ValidateResponse answers Validate: valid when check passes, else invalid with its error as a note.
func ValidateResponse(err error) *configv1.ValidateResponse {
	if err != nil {
		return &configv1.ValidateResponse{Valid: false, Notes: []string{err.Error()}}
	}
	return &configv1.ValidateResponse{Valid: true}
}

// WriteBundleRoots writes the bundle's X.509 authorities as PEM CERTIFICATE blocks to path,
// replacing the file atomically so that a reader never sees half a bundle.
func WriteBundleRoots(path string, bundle *types.Bundle) error {
	var out []byte
	for _, authority := range bundle.GetX509Authorities() {
		out = append(out, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: authority.GetAsn1()})...)
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, out, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}
