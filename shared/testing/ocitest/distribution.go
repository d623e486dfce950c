package ocitest

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"time"

	"golang.org/x/crypto/bcrypt"
)

// Distribution is the CNCF distribution registry (Debian's docker-registry package) run on a
// loopback port with htpasswd authentication, as registries in the field are.
type Distribution struct {
	Host string
	cmd  *exec.Cmd
	done chan struct{}
}

// ErrNoDistribution says that the docker-registry program is not installed (.ci/run installs
// it with apt).
var ErrNoDistribution = errors.New("docker-registry is not installed (apt-get install docker-registry)")

// StartDistribution runs docker-registry with its storage in dir, accepting user and password.
func StartDistribution(dir, user, password string) (*Distribution, error) {
	bin, err := exec.LookPath("docker-registry")
	if err != nil {
		return nil, ErrNoDistribution
	}
	hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "htpasswd"), fmt.Appendf(nil, "%s:%s\n", user, hash), 0o600); err != nil {
		return nil, err
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	host := l.Addr().String()
	_ = l.Close()
	config := fmt.Sprintf(`version: 0.1
log:
  level: error
storage:
  filesystem:
    rootdirectory: %s
  delete:
    enabled: true
http:
  addr: %s
auth:
  htpasswd:
    realm: plumb-test
    path: %s
`, filepath.Join(dir, "data"), host, filepath.Join(dir, "htpasswd"))
	cfg := filepath.Join(dir, "config.yml")
	if err := os.WriteFile(cfg, []byte(config), 0o600); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		return nil, err
	}
	cmd := exec.Command(bin, "serve", cfg)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return nil, err
	}
	d := &Distribution{Host: host, cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = log.Close(); close(d.done) }()
	// Ready when /v2/ answers (401 without credentials).
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + host + "/v2/")
		if err == nil {
			_ = resp.Body.Close()
			return d, nil
		}
		select {
		case <-d.done:
			data, _ := os.ReadFile(filepath.Join(dir, "registry.log"))
			return nil, fmt.Errorf("docker-registry exited: %s", data)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			d.Stop()
			return nil, fmt.Errorf("docker-registry not answering on %s after 30 s", host)
		}
	}
}

// Stop ends the registry.
func (d *Distribution) Stop() {
	_ = d.cmd.Process.Kill()
	<-d.done
}
