// A Go service that accepts latchkey keys (docs/relying-parties.md), standard library only.
//
// Usage: go run ./go-server PORT SERVER_CERT SERVER_KEY CA_CHAIN CRL
//
// CA_CHAIN is `GET /v1/ca` (the intermediate, then the root). CRL is the intermediate's CRL
// (DER or PEM) that `latchkey crl sync --out CRL` keeps fresh; it is read again whenever the
// file changes. Clients may send their leaf alone: the chain is built from CA_CHAIN.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"log"
	"net/http"
	"os"
	"strings"
	"sync"
	"time"
)

type revocations struct {
	mu      sync.Mutex
	path    string
	issuer  *x509.Certificate
	stamp   time.Time
	revoked map[string]bool
	next    time.Time
}

// current reads the CRL again if the file changed, checks its signature, and returns the
// revoked serials; a CRL past its nextUpdate fails closed.
func (r *revocations) current() (map[string]bool, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	info, err := os.Stat(r.path)
	if err != nil {
		return nil, err
	}
	if !info.ModTime().Equal(r.stamp) {
		raw, err := os.ReadFile(r.path)
		if err != nil {
			return nil, err
		}
		// The first X509 CRL block of a PEM bundle, or DER.
		for rest := raw; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type == "X509 CRL" {
				raw = block.Bytes
				break
			}
		}
		crl, err := x509.ParseRevocationList(raw)
		if err != nil {
			return nil, err
		}
		if err := crl.CheckSignatureFrom(r.issuer); err != nil {
			return nil, err
		}
		revoked := map[string]bool{}
		for _, entry := range crl.RevokedCertificates {
			revoked[entry.SerialNumber.String()] = true
		}
		r.revoked, r.next, r.stamp = revoked, crl.NextUpdate, info.ModTime()
	}
	if time.Now().After(r.next) {
		return nil, errors.New("the CRL is past its nextUpdate")
	}
	return r.revoked, nil
}

func main() {
	port, serverCert, serverKey, caChain, crlPath := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	chain, err := os.ReadFile(caChain)
	if err != nil {
		log.Fatal(err)
	}
	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	var issuer *x509.Certificate
	for rest := chain; ; {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			log.Fatal(err)
		}
		if cert.Subject.String() == cert.Issuer.String() {
			roots.AddCert(cert)
		} else {
			intermediates.AddCert(cert)
			issuer = cert
		}
	}
	crl := &revocations{path: crlPath, issuer: issuer}
	pair, err := tls.LoadX509KeyPair(serverCert, serverKey)
	if err != nil {
		log.Fatal(err)
	}
	config := &tls.Config{
		Certificates: []tls.Certificate{pair},
		// Verified below, with the CA's intermediate whatever the client sends.
		ClientAuth: tls.RequireAnyClientCert,
		VerifyConnection: func(state tls.ConnectionState) error {
			leaf := state.PeerCertificates[0]
			_, err := leaf.Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: intermediates,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})
			if err != nil {
				return err
			}
			revoked, err := crl.current()
			if err != nil {
				return err
			}
			if revoked[leaf.SerialNumber.String()] {
				return errors.New("certificate revoked")
			}
			return nil
		},
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		leaf := r.TLS.PeerCertificates[0]
		keyID := ""
		if len(leaf.URIs) == 1 {
			if parts := strings.SplitN(leaf.URIs[0].Path, "/key/", 2); len(parts) == 2 {
				keyID = parts[1]
			}
		}
		// Authorize on the scopes (Subject OU), e.g. require "read:metrics".
		json.NewEncoder(w).Encode(map[string]any{
			"owner":  leaf.Subject.CommonName,
			"tenant": leaf.Subject.Organization[0],
			"key_id": keyID,
			"scopes": leaf.Subject.OrganizationalUnit,
		})
	})
	server := &http.Server{Addr: "127.0.0.1:" + port, Handler: handler, TLSConfig: config}
	fmt.Println("listening")
	log.Fatal(server.ListenAndServeTLS("", ""))
}
