// Package local runs Plumb on this machine for the demo, benchmarks and end-to-end tests: the
// control plane of shared/testing/testenv, a Git server on loopback, and controllers built from
// the workspace and run as processes.
package local

import (
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Process is a controller binary running against the control plane. It can be killed and
// started again with the same arguments, as a kubelet restarts a container.
type Process struct {
	bin, kubeconfig, logFile string
	args                     []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	err  error // from Wait, once done is closed
	// stopping is set by Stop, so that a supervisor does not start the process again.
	stopping bool
	restarts int
}

// Build compiles a controller's cmd package of the workspace into dir and returns the binary.
func Build(root, module, dir string) (string, error) {
	out := filepath.Join(dir, module)
	cmd := exec.Command("go", "build", "-buildvcs=false", "-o", out, "./"+module+"/cmd")
	cmd.Dir = root
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Run(); err != nil {
		return "", fmt.Errorf("build %s: %w", module, err)
	}
	return out, nil
}

// Start runs bin with KUBECONFIG set, its output appended to logFile.
func Start(bin, kubeconfig, logFile string, args ...string) (*Process, error) {
	p := &Process{bin: bin, kubeconfig: kubeconfig, logFile: logFile, args: args}
	return p, p.start()
}

func (p *Process) start() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopping {
		return errors.New("stopped")
	}
	log, err := os.OpenFile(p.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(p.bin, p.args...)
	cmd.Env = append(os.Environ(), "KUBECONFIG="+p.kubeconfig)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		_ = log.Close()
		return err
	}
	done := make(chan struct{})
	p.cmd, p.done, p.err = cmd, done, nil
	go func() {
		err := cmd.Wait()
		_ = log.Close()
		p.mu.Lock()
		if p.cmd == cmd {
			p.err = err
		}
		p.mu.Unlock()
		close(done)
	}()
	return nil
}

func (p *Process) current() (*exec.Cmd, chan struct{}) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.cmd, p.done
}

// Stop asks the process to end and kills it after 10 s.
func (p *Process) Stop() {
	p.mu.Lock()
	p.stopping = true
	p.mu.Unlock()
	cmd, done := p.current()
	_ = cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = cmd.Process.Kill()
		<-done
	}
}

// Kill ends the process with SIGKILL, as the kernel's OOM killer or a node failure would, and
// waits until it is gone.
func (p *Process) Kill() {
	cmd, done := p.current()
	_ = cmd.Process.Kill()
	<-done
}

// Restart starts the process again with the same arguments once the last one has ended.
func (p *Process) Restart() error {
	_, done := p.current()
	select {
	case <-done:
	default:
		return fmt.Errorf("%s is still running", filepath.Base(p.bin))
	}
	return p.start()
}

// Supervise starts the process again whenever it exits, after delay, as a kubelet restarts the
// container of a Deployment's pod, until Stop.
func (p *Process) Supervise(delay time.Duration) {
	go func() {
		for {
			<-p.Exited()
			time.Sleep(delay) // the kubelet's back-off, not a wait for a condition
			if p.start() != nil {
				return // stopped
			}
			p.mu.Lock()
			p.restarts++
			p.mu.Unlock()
		}
	}()
}

// Restarts counts the starts Supervise made.
func (p *Process) Restarts() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.restarts
}

// Log is the process's log file.
func (p *Process) Log() string { return p.logFile }

// Pid is the process id of the running (or last) process.
func (p *Process) Pid() int {
	cmd, _ := p.current()
	return cmd.Process.Pid
}

// Exited is closed when the current process has ended.
func (p *Process) Exited() <-chan struct{} {
	_, done := p.current()
	return done
}

// ExitErr is how the current process ended (nil while it runs or after a clean exit).
func (p *Process) ExitErr() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.err
}

// CPU returns the user+system CPU time the process has used so far.
func (p *Process) CPU() (time.Duration, error) { return PidCPU(p.Pid()) }

// PidCPU returns the user+system CPU time the process pid has used so far.
func PidCPU(pid int) (time.Duration, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, err
	}
	// The fields after the command name, which is in parentheses and may hold spaces.
	f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	const ticks = 100 // USER_HZ on Linux
	return time.Duration(utime+stime) * time.Second / ticks, nil
}

// PeakRSS returns the process's high-water mark of resident memory, in MiB.
func (p *Process) PeakRSS() (float64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", p.Pid()))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "VmHWM:"); ok {
			kb, err := strconv.ParseFloat(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 64)
			return kb / 1024, err
		}
	}
	return 0, fmt.Errorf("no VmHWM for pid %d", p.Pid())
}

// FreeAddr returns a loopback address with a port free right now.
func FreeAddr() (string, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

// CPUProfile saves a CPU profile of a process serving /debug/pprof at addr.
func CPUProfile(addr string, d time.Duration, file string) error {
	resp, err := http.Get(fmt.Sprintf("http://%s/debug/pprof/profile?seconds=%d", addr, int(d.Seconds())))
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("profile: %s", resp.Status)
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	_, err = io.Copy(f, resp.Body)
	return errors.Join(err, f.Close())
}

// APIServerPid finds the kube-apiserver process that serves host (https://127.0.0.1:<port>):
// the one whose command line holds --secure-port=<port>. Other control planes on the machine
// (tests, other benchmarks) have ports of their own.
func APIServerPid(host string) (int, error) {
	u, err := url.Parse(host)
	if err != nil {
		return 0, err
	}
	want := "--secure-port=" + u.Port()
	dirs, err := os.ReadDir("/proc")
	if err != nil {
		return 0, err
	}
	for _, d := range dirs {
		pid, err := strconv.Atoi(d.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile(filepath.Join("/proc", d.Name(), "cmdline"))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		if len(args) > 0 && filepath.Base(args[0]) == "kube-apiserver" && slices.Contains(args, want) {
			return pid, nil
		}
	}
	return 0, fmt.Errorf("no kube-apiserver process with %s", want)
}
