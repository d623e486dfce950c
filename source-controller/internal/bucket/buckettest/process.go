package buckettest

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

// freeAddr returns a loopback host:port that was free a moment ago.
func freeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	addr := l.Addr().String()
	return addr, l.Close()
}

// process is an emulator started by the tests, its output in a log file of its folder.
type process struct {
	cmd  *exec.Cmd
	done chan struct{}
}

// startProcess runs cmd with its output in dir/name.log and waits, up to a minute, until probe
// answers any HTTP status.
func startProcess(name, dir string, cmd *exec.Cmd, probe string) (*process, error) {
	logPath := filepath.Join(dir, name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return nil, err
	}
	p := &process{cmd: cmd, done: make(chan struct{})}
	go func() { _ = cmd.Wait(); _ = logf.Close(); close(p.done) }()
	deadline := time.Now().Add(time.Minute)
	for {
		resp, err := http.Get(probe)
		if err == nil {
			_ = resp.Body.Close()
			return p, nil
		}
		select {
		case <-p.done:
			data, _ := os.ReadFile(logPath)
			return nil, fmt.Errorf("%s exited: %s", name, lastLines(string(data), 20))
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.stop()
			return nil, fmt.Errorf("%s not answering at %s after a minute", name, probe)
		}
	}
}

// stop ends the process and waits for it.
func (p *process) stop() {
	if p.cmd.Process != nil {
		_ = p.cmd.Process.Kill()
	}
	<-p.done
}

// Downloads is a loopback reverse proxy in front of an emulator that counts the requests that
// download an object. The Host header goes through unchanged.
type Downloads struct {
	// Endpoint is the proxy's 127.0.0.1:port.
	Endpoint   string
	n          atomic.Int64
	authorized atomic.Value // the last Authorization header's scheme and first characters
}

// newDownloads starts a counting proxy in front of target (http://host:port); isDownload says
// which requests download an object.
func newDownloads(t testing.TB, target string, isDownload func(*http.Request) bool) *Downloads {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	rp := httputil.NewSingleHostReverseProxy(u)
	d := &Downloads{}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if isDownload(r) {
			d.n.Add(1)
		}
		if a := r.Header.Get("Authorization"); a != "" {
			d.authorized.Store(a)
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	d.Endpoint = strings.TrimPrefix(srv.URL, "http://")
	return d
}

// Gets is the number of object downloads so far.
func (d *Downloads) Gets() int { return int(d.n.Load()) }

// Authorization is the last Authorization header seen ("" before any).
func (d *Downloads) Authorization() string {
	v, _ := d.authorized.Load().(string)
	return v
}
