// go-oidc-verify: an OIDC relying party on github.com/coreos/go-oidc/v3, for the interoperability
// tests of spire-rs's OIDC Discovery Provider.
//
// It discovers the provider once (oidc.NewProvider on -discovery, expecting the document's issuer to
// be -issuer when that is given), then verifies the JWTs it reads from stdin, one
// "<audience> <token>" per line (the audience is the OIDC client ID the token must be for), printing
// one JSON object per line:
// {"ok":true,"subject":"...","issuer":"...","audience":[...]} or {"ok":false,"error":"..."}.
// The key set is go-oidc's remote one: fetched from the document's jwks_uri when a token names a
// key it has not seen, so a long-running verifier follows key rotation as real relying parties do.
// A failed discovery prints {"ok":false,"error":"discovery: ..."} and exits with status 2.
// TLS roots are the system's (SSL_CERT_FILE selects a test CA).
package main

import (
	"bufio"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"strings"

	"github.com/coreos/go-oidc/v3/oidc"
)

type result struct {
	OK       bool     `json:"ok"`
	Subject  string   `json:"subject,omitempty"`
	Issuer   string   `json:"issuer,omitempty"`
	Audience []string `json:"audience,omitempty"`
	Error    string   `json:"error,omitempty"`
}

func emit(out *json.Encoder, r result) {
	if err := out.Encode(r); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(3)
	}
}

func main() {
	discovery := flag.String("discovery", "", "provider URL the discovery document is fetched from")
	issuer := flag.String("issuer", "", "issuer the document must name (default: the -discovery URL)")
	flag.Parse()
	out := json.NewEncoder(os.Stdout)

	ctx := context.Background()
	if *issuer != "" && *issuer != *discovery {
		ctx = oidc.InsecureIssuerURLContext(ctx, *issuer)
	}
	provider, err := oidc.NewProvider(ctx, *discovery)
	if err != nil {
		emit(out, result{Error: "discovery: " + err.Error()})
		os.Exit(2)
	}
	in := bufio.NewScanner(os.Stdin)
	in.Buffer(make([]byte, 64*1024), 1024*1024)
	for in.Scan() {
		audience, token, ok := strings.Cut(strings.TrimSpace(in.Text()), " ")
		if !ok {
			emit(out, result{Error: "want \"<audience> <token>\""})
			continue
		}
		// Verifiers of one provider share its remote key set (and its cache).
		verifier := provider.Verifier(&oidc.Config{ClientID: audience})
		idToken, err := verifier.Verify(ctx, token)
		if err != nil {
			emit(out, result{Error: err.Error()})
			continue
		}
		emit(out, result{OK: true, Subject: idToken.Subject, Issuer: idToken.Issuer, Audience: idToken.Audience})
	}
}
