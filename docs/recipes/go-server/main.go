// A Go service that accepts latchkey keys (docs/relying-parties.md), standard library only.
//
// Usage: go run ./go-server PORT SERVER_CERT SERVER_KEY CA_CHAIN CRL
//
// CA_CHAIN is `GET /v1/ca` (every published intermediate, then the root). CRL is the file
// `latchkey crl sync --out CRL` keeps fresh (every intermediate's CRL, PEM; or one CRL in
// DER); it is read again whenever the file changes, and each leaf is checked against the
// CRL of the intermediate that issued it (after a rotation there are several). Clients may
// send their leaf alone: the chain is built from CA_CHAIN.
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

// issued is what one intermediate's CRL says.
type issued struct {
	revoked map[string]bool
	next    time.Time
}

type revocations struct {
	mu      sync.Mutex
	path    string
	issuers []*x509.Certificate
	stamp   time.Time
	// By the issuing intermediate's raw subject and key.
	crls map[string]issued
}

func issuerKey(cert *x509.Certificate) string {
	return string(cert.RawSubject) + string(cert.SubjectKeyId)
}

// current reads the CRLs again if the file changed, files each under the intermediate that
// signed it (a CRL no intermediate signed, such as the root's, is left out), and returns
// the revoked serials of `issuer`'s; no CRL for it, or one past its nextUpdate, fails closed.
func (r *revocations) current(issuer *x509.Certificate) (map[string]bool, error) {
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
		// Every X509 CRL block of a PEM bundle, or one DER CRL.
		var blocks [][]byte
		for rest := raw; ; {
			var block *pem.Block
			block, rest = pem.Decode(rest)
			if block == nil {
				break
			}
			if block.Type == "X509 CRL" {
				blocks = append(blocks, block.Bytes)
			}
		}
		if len(blocks) == 0 {
			blocks = [][]byte{raw}
		}
		crls := map[string]issued{}
		for _, der := range blocks {
			crl, err := x509.ParseRevocationList(der)
			if err != nil {
				return nil, err
			}
			for _, candidate := range r.issuers {
				if crl.CheckSignatureFrom(candidate) == nil {
					revoked := map[string]bool{}
					for _, entry := range crl.RevokedCertificates {
						revoked[entry.SerialNumber.String()] = true
					}
					crls[issuerKey(candidate)] = issued{revoked, crl.NextUpdate}
				}
			}
		}
		r.crls, r.stamp = crls, info.ModTime()
	}
	crl, ok := r.crls[issuerKey(issuer)]
	if !ok {
		return nil, errors.New("no CRL of the certificate's issuer")
	}
	if time.Now().After(crl.next) {
		return nil, errors.New("the CRL is past its nextUpdate")
	}
	return crl.revoked, nil
}

func main() {
	port, serverCert, serverKey, caChain, crlPath := os.Args[1], os.Args[2], os.Args[3], os.Args[4], os.Args[5]
	chain, err := os.ReadFile(caChain)
	if err != nil {
		log.Fatal(err)
	}
	roots, intermediates := x509.NewCertPool(), x509.NewCertPool()
	var issuers []*x509.Certificate
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
			issuers = append(issuers, cert)
		}
	}
	crl := &revocations{path: crlPath, issuers: issuers}
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
			chains, err := leaf.Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: intermediates,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})
			if err != nil {
				return err
			}
			// The intermediate that issued the leaf, on the path Go verified.
			if len(chains[0]) < 3 {
				return errors.New("not issued by one of the CA's intermediates")
			}
			revoked, err := crl.current(chains[0][1])
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
