package controller

import (
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/fluxcd/gitkit"
	"github.com/fluxcd/pkg/gittestserver"
	. "github.com/onsi/gomega"
	"golang.org/x/crypto/ssh"

	sourcev1 "github.com/plumb-dev/plumb/source-controller/api/v1beta1"
)

// TestGitRepository_HTTPSWithCA serves the repository over HTTPS with a certificate of a private
// CA: trusted with the Secret's ca.crt, refused without it.
func TestGitRepository_HTTPSWithCA(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"v": "1\n"})
	head, _ := repo.repo.Head()

	caPEM, certPEM, keyPEM := testCertificates(t)
	tlsServer := gittestserver.NewGitServer(gitServer.Root()).Auth(gitUser, gitPassword)
	g.Expect(tlsServer.StartHTTPS(certPEM, keyPEM, caPEM, "127.0.0.1")).To(Succeed())
	t.Cleanup(tlsServer.StopHTTP)
	url := tlsServer.HTTPAddress() + "/" + path.Base(repo.url)
	g.Expect(url).To(HavePrefix("https://127.0.0.1:"))

	trusted := newGitRepository(ns, url, credentialsSecret(t, ns, map[string]string{
		"username": gitUser, "password": gitPassword, "ca.crt": string(caPEM),
	}), nil)
	create(g, trusted)
	waitReady(g, trusted, "main@sha1:"+head.Hash().String())

	untrusted := newGitRepository(ns, url, basicAuth(t, ns), nil)
	create(g, untrusted)
	msg := waitFailed(g, untrusted, sourcev1.GitOperationFailedReason)
	g.Expect(msg).To(ContainSubstring("certificate"))
}

// testCertificates returns a CA and a server certificate for 127.0.0.1 signed by it, as PEM.
func testCertificates(t *testing.T) (caPEM, certPEM, keyPEM []byte) {
	t.Helper()
	caKey, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ca := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "plumb test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, ca, ca, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	leaf := &x509.Certificate{
		SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "127.0.0.1"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:    x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	}
	leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	keyDER, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}),
		pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: keyDER})
}

// The SSH side of the package's Git server: it accepts only sshClientKey, and presents the host
// key in sshKnownHosts.
var (
	sshClientKey  []byte
	sshKnownHosts string
)

func startSSH(dir string) (stop func(), err error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	if sshClientKey, err = privateKeyPEM(priv); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	accepted := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	keyDir := filepath.Join(dir, "ssh-host-keys")
	gitServer.KeyDir(keyDir)
	gitServer.PublicKeyLookupFunc(func(content string) (*gitkit.PublicKey, error) {
		if content != accepted {
			return nil, errors.New("unknown public key")
		}
		return &gitkit.PublicKey{Id: "test"}, nil
	})
	if err := gitServer.ListenSSH(); err != nil {
		return nil, err
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = gitServer.StartSSH()
	}()
	pub, err := os.ReadFile(filepath.Join(keyDir, "gitkit.rsa.pub"))
	if err != nil {
		return nil, err
	}
	host := strings.TrimPrefix(gitServer.SSHAddress(), "ssh://git@")
	h, port, _ := net.SplitHostPort(host)
	sshKnownHosts = fmt.Sprintf("[%s]:%s %s\n", h, port, strings.TrimSpace(string(pub)))
	return func() { _ = gitServer.StopSSH(); <-served }, nil
}

func privateKeyPEM(priv ed25519.PrivateKey) ([]byte, error) {
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		return nil, err
	}
	return pem.EncodeToMemory(block), nil
}

// A GitRepository over SSH with its Secret's identity and known_hosts. What the Secret's keys give
// is tested in shared/gitauth, and SSH failures (a refused key, another host key) in
// internal/git; that credentials errors read AuthenticationFailed, in TestGitRepository_BadInput.
func TestGitRepository_SSH(t *testing.T) {
	g := NewWithT(t)
	ns := newNamespace(t)
	repo := newRepo(t, map[string]string{"v": "1\n"})
	head, _ := repo.repo.Head()
	url := gitServer.SSHAddress() + "/" + path.Base(repo.url)
	obj := newGitRepository(ns, url, credentialsSecret(t, ns, map[string]string{
		"identity": string(sshClientKey), "known_hosts": sshKnownHosts,
	}), nil)
	create(g, obj)
	waitReady(g, obj, "main@sha1:"+head.Hash().String())
	g.Expect(files(g, obj.Status.Artifact)).To(Equal(map[string]string{"v": "1\n"}))
}
