// x509check parses what a latchkey CA issues with Go's crypto/x509, the strictest common
// parser about OID arcs (golang/go#30757): it refuses a whole certificate with an arc above
// 31 bits. Standard library only, so `go run` needs no module download.
//
//	go run main.go [-keypair cert.pem key.pem] [-verify root.pem chain.pem] file.pem...
//
// Every PEM block of every file must parse: CERTIFICATE with x509.ParseCertificate, X509 CRL
// with x509.ParseRevocationList. One line per block on stdout; any failure exits 1.
package main

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"strings"
)

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, format+"\n", args...)
	os.Exit(1)
}

func blocks(path string) []*pem.Block {
	data, err := os.ReadFile(path)
	if err != nil {
		fail("%s: %v", path, err)
	}
	var out []*pem.Block
	for {
		var block *pem.Block
		block, data = pem.Decode(data)
		if block == nil {
			break
		}
		out = append(out, block)
	}
	if len(out) == 0 {
		fail("%s: no PEM block", path)
	}
	return out
}

func certificates(path string) []*x509.Certificate {
	var out []*x509.Certificate
	for _, block := range blocks(path) {
		cert, err := x509.ParseCertificate(block.Bytes)
		if err != nil {
			fail("%s: %v", path, err)
		}
		out = append(out, cert)
	}
	return out
}

func main() {
	args := os.Args[1:]
	for len(args) > 0 {
		switch args[0] {
		case "-keypair":
			if len(args) < 3 {
				fail("-keypair needs cert.pem and key.pem")
			}
			pair, err := tls.LoadX509KeyPair(args[1], args[2])
			if err != nil {
				fail("tls.LoadX509KeyPair(%s, %s): %v", args[1], args[2], err)
			}
			fmt.Printf("keypair %s certificates=%d\n", args[1], len(pair.Certificate))
			args = args[3:]
		case "-verify":
			if len(args) < 3 {
				fail("-verify needs root.pem and chain.pem")
			}
			roots := x509.NewCertPool()
			for _, root := range certificates(args[1]) {
				roots.AddCert(root)
			}
			chain := certificates(args[2])
			intermediates := x509.NewCertPool()
			for _, cert := range chain[1:] {
				intermediates.AddCert(cert)
			}
			_, err := chain[0].Verify(x509.VerifyOptions{
				Roots:         roots,
				Intermediates: intermediates,
				KeyUsages:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
			})
			if err != nil {
				fail("verify %s: %v", args[2], err)
			}
			fmt.Printf("verified %s\n", args[2])
			args = args[3:]
		default:
			path := args[0]
			for _, block := range blocks(path) {
				switch block.Type {
				case "CERTIFICATE":
					cert, err := x509.ParseCertificate(block.Bytes)
					if err != nil {
						fail("%s: %v", path, err)
					}
					fmt.Printf("certificate %s cn=%s ou=%s\n", path, cert.Subject.CommonName,
						strings.Join(cert.Subject.OrganizationalUnit, ","))
				case "X509 CRL":
					crl, err := x509.ParseRevocationList(block.Bytes)
					if err != nil {
						fail("%s: %v", path, err)
					}
					fmt.Printf("crl %s entries=%d\n", path, len(crl.RevokedCertificates))
				default:
					fail("%s: unexpected PEM block %s", path, block.Type)
				}
			}
			args = args[1:]
		}
	}
}
