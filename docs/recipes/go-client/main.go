// A Go client calling a service with a latchkey key (docs/relying-parties.md).
//
// Usage: go run ./go-client URL CA_FILE KEY_DIR
package main

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net/http"
	"os"
)

func main() {
	url, caFile, keyDir := os.Args[1], os.Args[2], os.Args[3]
	// The leaf alone (cert.pem) is enough: latchkey services build the path themselves.
	pair, err := tls.LoadX509KeyPair(keyDir+"/cert.pem", keyDir+"/key.pem")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	ca, err := os.ReadFile(caFile)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(ca)
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{
		Certificates: []tls.Certificate{pair},
		RootCAs:      roots,
	}}}
	answer, err := client.Get(url)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	body, _ := io.ReadAll(answer.Body)
	fmt.Println(answer.StatusCode)
	fmt.Print(string(body))
}
