// Package notifytest runs the real servers notifications are delivered to, on loopback ports,
// as processes of the Debian packages .ci/run installs: Prometheus Alertmanager
// (prometheus-alertmanager) and NATS (nats-server). A test that needs one is skipped when it is
// not installed, and fails instead when the environment variable CI is set (testenv.NeedTool).
package notifytest

import (
	"bufio"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/bcrypt"

	"github.com/plumb-dev/plumb/shared/testing/nettest"
	"github.com/plumb-dev/plumb/shared/testing/testenv"
)

// Alertmanager is a running prometheus-alertmanager.
type Alertmanager struct {
	// URL is its API's root, http://127.0.0.1:<port>; alerts are posted to URL+"/api/v2/alerts".
	URL string

	user, password string
}

// StartAlertmanager runs prometheus-alertmanager for the test with one receiver that sends
// nothing, its storage in a temporary folder and clustering off (it would listen on every
// interface); with user set, its API asks for basic authentication (its --web.config.file).
// It is stopped when the test ends.
func StartAlertmanager(t testing.TB, user, password string) *Alertmanager {
	t.Helper()
	bin := testenv.NeedTool(t, "prometheus-alertmanager")
	dir := t.TempDir()
	cfg := filepath.Join(dir, "alertmanager.yml")
	if err := os.WriteFile(cfg, []byte("route:\n  receiver: none\nreceivers:\n  - name: none\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	addr := freeAddr(t)
	args := []string{"--config.file=" + cfg, "--storage.path=" + filepath.Join(dir, "data"),
		"--web.listen-address=" + addr, "--cluster.listen-address=", "--log.level=warn"}
	am := &Alertmanager{URL: "http://" + addr}
	if user != "" {
		hash, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.MinCost)
		if err != nil {
			t.Fatal(err)
		}
		web := filepath.Join(dir, "web.yml")
		if err := os.WriteFile(web, fmt.Appendf(nil, "basic_auth_users:\n  %s: %s\n", user, hash), 0o600); err != nil {
			t.Fatal(err)
		}
		args = append(args, "--web.config.file="+web)
		am.user, am.password = user, password
	}
	done := start(t, dir, "alertmanager", bin, args...)
	waitFor(t, dir, "alertmanager", done, func() bool {
		resp, err := am.get("/-/ready")
		if err != nil {
			return false
		}
		_ = resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return am
}

// get asks the API with the credentials it was started with.
func (a *Alertmanager) get(path string) (*http.Response, error) {
	req, err := http.NewRequest(http.MethodGet, a.URL+path, nil)
	if err != nil {
		return nil, err
	}
	if a.user != "" {
		req.SetBasicAuth(a.user, a.password)
	}
	return http.DefaultClient.Do(req)
}

// Alert is an alert as Alertmanager's API returns it.
type Alert struct {
	Labels      map[string]string `json:"labels"`
	Annotations map[string]string `json:"annotations"`
	StartsAt    time.Time         `json:"startsAt"`
	EndsAt      time.Time         `json:"endsAt"`
	Status      struct {
		State string `json:"state"`
	} `json:"status"`
}

// Alerts lists the alerts Alertmanager serves: those firing (resolved ones are left out).
func (a *Alertmanager) Alerts() ([]Alert, error) {
	resp, err := a.get("/api/v2/alerts?active=true&silenced=true&inhibited=true&unprocessed=true")
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("alertmanager answered %s", resp.Status)
	}
	var out []Alert
	return out, json.NewDecoder(resp.Body).Decode(&out)
}

// NATS is a running nats-server.
type NATS struct {
	// URL is nats://127.0.0.1:<port>.
	URL string
}

// StartNATS runs nats-server for the test on a loopback port, with config (nats-server's
// configuration format: authorization, tls, …) added to the listen address; it is stopped
// when the test ends.
func StartNATS(t testing.TB, config string) *NATS {
	t.Helper()
	bin, err := exec.LookPath("nats-server")
	if err != nil {
		// Debian installs it in /usr/sbin, which a user's PATH may not hold.
		if _, serr := os.Stat("/usr/sbin/nats-server"); serr != nil {
			testenv.MissingTool(t, "nats-server", err)
		}
		bin = "/usr/sbin/nats-server"
	}
	dir := t.TempDir()
	addr := freeAddr(t)
	cfg := filepath.Join(dir, "nats.conf")
	if err := os.WriteFile(cfg, []byte("listen: "+addr+"\n"+config+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	done := start(t, dir, "nats-server", bin, "-c", cfg)
	waitFor(t, dir, "nats-server", done, func() bool {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetReadDeadline(time.Now().Add(time.Second))
		line, err := bufio.NewReader(c).ReadString('\n')
		return err == nil && strings.HasPrefix(line, "INFO ")
	})
	return &NATS{URL: "nats://" + addr}
}

// freeAddr is a loopback address with a port free a moment ago.
func freeAddr(t testing.TB) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().String()
}

// start runs the program with its output in dir/<name>.log, killed when the test ends; the
// channel is closed when it exits.
func start(t testing.TB, dir, name, bin string, args ...string) <-chan struct{} {
	t.Helper()
	log, err := os.Create(filepath.Join(dir, name+".log"))
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		t.Fatalf("starting %s: %v", name, err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = log.Close(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
	})
	return done
}

// waitFor polls ready for 30 s, failing the test with the program's log if it exits or stays
// unready.
func waitFor(t testing.TB, dir, name string, done <-chan struct{}, ready func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !ready() {
		select {
		case <-done:
			data, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			t.Fatalf("%s exited: %s", name, data)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(filepath.Join(dir, name+".log"))
			t.Fatalf("%s not ready after 30 s: %s", name, data)
		}
	}
}

// Certificate makes a self-signed certificate for 127.0.0.1, its own authority, valid for an
// hour: PEM of the certificate and of its key, for a server's TLS.
func Certificate(t testing.TB) (certPEM, keyPEM []byte) {
	t.Helper()
	der, key := nettest.SelfSigned(t)
	k, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: k})
}
