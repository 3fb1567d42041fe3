package app

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"net"
	"net/http"
	"strings"
	"time"
)

// protocols are what the server speaks: HTTP/1.1 always; HTTP/2 over TLS
// with -tls, and unencrypted HTTP/2 (h2c, for a proxy in front that
// speaks it) with -h2c. Over HTTP/2 a browser carries every stream of
// every tab on one connection, so the HTTP/1.1 limit of six connections
// per site is gone.
func protocols(cfg Config) *http.Protocols {
	p := new(http.Protocols)
	p.SetHTTP1(true)
	p.SetHTTP2(cfg.TLS)
	p.SetUnencryptedHTTP2(cfg.H2C)
	return p
}

// tlsConfig loads -tls-cert and -tls-key, or makes a certificate for
// localhost at start, and says which in a line for the user: the SHA-256
// fingerprint lets them check what their browser is shown.
func tlsConfig(cfg Config) (*tls.Config, string, error) {
	var cert tls.Certificate
	var err error
	made := cfg.TLSCert == ""
	if made {
		cert, err = localhostCert(time.Now())
	} else {
		cert, err = tls.LoadX509KeyPair(cfg.TLSCert, cfg.TLSKey)
	}
	if err != nil {
		return nil, "", fmt.Errorf("-tls: %w", err)
	}
	sum := sha256.Sum256(cert.Certificate[0])
	var fp []string
	for _, b := range sum {
		fp = append(fp, strings.ToUpper(hex.EncodeToString([]byte{b})))
	}
	what := "certificate from " + cfg.TLSCert
	if made {
		what = "certificate made at start for localhost (browsers will warn: it is signed by nobody)"
	}
	return &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12},
		what + ", SHA-256 fingerprint " + strings.Join(fp, ":"), nil
}

// localhostCert is a self-signed certificate for localhost, 127.0.0.1 and
// ::1, valid for a year.
func localhostCert(now time.Time) (tls.Certificate, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return tls.Certificate{}, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "localhost", Organization: []string{"sselab development"}},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(365 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		DNSNames:     []string{"localhost"},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, err
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}, nil
}
