package local

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"k8s.io/client-go/rest"
)

// apiServer is what the bed keeps of kube-apiserver to stop and start it again: its command
// line, and the process the bed started in place of the control plane's own.
type apiServer struct {
	args []string
	cmd  *exec.Cmd
	done chan struct{}
}

// StopAPIServer stops the control plane's kube-apiserver, with SIGTERM as a rolling update of
// the control plane does or, when kill is set, SIGKILL, and waits until it is gone. Its command
// line is kept for StartAPIServer; etcd, and so every object, stays.
func (b *Bed) StopAPIServer(kill bool) error {
	sig := syscall.SIGTERM
	if kill {
		sig = syscall.SIGKILL
	}
	if b.api != nil {
		if b.api.cmd == nil {
			return errors.New("kube-apiserver is already stopped")
		}
		_ = b.api.cmd.Process.Signal(sig)
		<-b.api.done
		b.api.cmd = nil
		return nil
	}
	pid, err := APIServerPid(b.Env.Config.Host)
	if err != nil {
		return err
	}
	cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
	if err != nil {
		return err
	}
	b.api = &apiServer{args: strings.Split(strings.TrimSuffix(string(cmdline), "\x00"), "\x00")}
	if err := syscall.Kill(pid, sig); err != nil {
		return err
	}
	// The control plane's process is a child of this one, reaped by envtest: gone once
	// signalling it fails, or ended once it is a zombie.
	deadline := time.Now().Add(2 * time.Minute)
	for syscall.Kill(pid, 0) == nil && !zombie(pid) {
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver (pid %d) still runs 2 minutes after %s", pid, sig)
		}
		time.Sleep(20 * time.Millisecond) // a poll with a deadline
	}
	return nil
}

// zombie tells whether the process has ended and waits to be reaped.
func zombie(pid int) bool {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return true
	}
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+1:]))
	return len(f) > 0 && f[0] == "Z"
}

// StartAPIServer starts kube-apiserver again after StopAPIServer, with the same command line
// (port, certificates, etcd), and waits until it is ready. Its log is kube-apiserver.log.
func (b *Bed) StartAPIServer() error {
	if b.api == nil || b.api.cmd != nil {
		return errors.New("kube-apiserver was not stopped by the bed")
	}
	log, err := os.OpenFile(filepath.Join(b.Dir, "kube-apiserver.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(b.api.args[0], b.api.args[1:]...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return fmt.Errorf("start kube-apiserver: %w", err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); _ = log.Close(); close(done) }()
	b.api.cmd, b.api.done = cmd, done
	return b.waitAPIServer(done)
}

// waitAPIServer polls /readyz with the admin credentials until it answers 200.
func (b *Bed) waitAPIServer(exited <-chan struct{}) error {
	hc, err := rest.HTTPClientFor(b.Env.Config)
	if err != nil {
		return err
	}
	hc.Timeout = 2 * time.Second
	deadline := time.Now().Add(2 * time.Minute)
	for {
		resp, err := hc.Get(strings.TrimSuffix(b.Env.Config.Host, "/") + "/readyz")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-exited:
			return fmt.Errorf("kube-apiserver exited while starting: see %s", filepath.Join(b.Dir, "kube-apiserver.log"))
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("kube-apiserver not ready after 2 minutes: %v", err)
		}
		time.Sleep(100 * time.Millisecond) // a poll with a deadline
	}
}

// stopAPIServer stops the kube-apiserver the bed started, if any, before the control plane
// stops its etcd.
func (b *Bed) stopAPIServer() {
	if b.api == nil || b.api.cmd == nil {
		return
	}
	_ = b.api.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-b.api.done:
	case <-time.After(time.Minute):
		_ = b.api.cmd.Process.Kill()
		<-b.api.done
	}
}

// CompactEtcd compacts etcd's history up to its current revision, as kube-apiserver does every
// five minutes: a watch that resumes from an older resource version is then answered 410 Gone
// and its client lists again. It uses etcd's JSON gateway, at the address kube-apiserver uses.
func (b *Bed) CompactEtcd(ctx context.Context) (int64, error) {
	etcd, err := b.etcdURL()
	if err != nil {
		return 0, err
	}
	var rng struct {
		Header struct {
			Revision string `json:"revision"`
		} `json:"header"`
	}
	if err := etcdCall(ctx, etcd+"/v3/kv/range", map[string]any{"key": "AA==", "limit": 1}, &rng); err != nil {
		return 0, err
	}
	var rev int64
	if _, err := fmt.Sscan(rng.Header.Revision, &rev); err != nil {
		return 0, fmt.Errorf("etcd revision %q: %w", rng.Header.Revision, err)
	}
	return rev, etcdCall(ctx, etcd+"/v3/kv/compaction", map[string]any{"revision": rev, "physical": true}, nil)
}

// etcdURL is the first --etcd-servers of kube-apiserver's command line.
func (b *Bed) etcdURL() (string, error) {
	args := []string(nil)
	if b.api != nil {
		args = b.api.args
	} else {
		pid, err := APIServerPid(b.Env.Config.Host)
		if err != nil {
			return "", err
		}
		cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", pid))
		if err != nil {
			return "", err
		}
		args = strings.Split(string(cmdline), "\x00")
	}
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--etcd-servers="); ok {
			return strings.Split(v, ",")[0], nil
		}
	}
	return "", errors.New("kube-apiserver has no --etcd-servers")
}

func etcdCall(ctx context.Context, url string, body, out any) error {
	data, err := json.Marshal(body)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(data))
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("etcd %s: %s", url, resp.Status)
	}
	if out == nil {
		return nil
	}
	return json.NewDecoder(resp.Body).Decode(out)
}
