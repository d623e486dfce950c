package git

import (
	"context"
	"testing"
	"time"

	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
	"github.com/plumb-dev/plumb/shared/testing/sshtest"
)

func TestResolve_AServerThatNeverAnswersFailsAtTheResponseHeaderDeadline(t *testing.T) {
	SetDeadlines(hostlimit.Deadlines{Dial: time.Second, TLSHandshake: time.Second, ResponseHeader: 300 * time.Millisecond})
	t.Cleanup(func() { SetDeadlines(hostlimit.DefaultDeadlines) })
	addr := nettest.NewHanging(t).Addr
	// A long overall timeout, as spec.timeout would be: the first-byte deadline must end it.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r, err := NewRemote("http://"+addr+"/stuck.git", nil)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, err = Resolve(ctx, r, Ref{Branch: "main"})
	if err == nil {
		t.Fatal("a server that never answers resolved a ref")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("Resolve failed after %s, want about the 300ms response-header deadline", d)
	}
	if ctx.Err() != nil {
		t.Errorf("the overall timeout ended Resolve, not the response-header deadline: %v", err)
	}
	t.Log(err)
}

func TestNewRemote_SSHKeysGetTheDialDeadline(t *testing.T) {
	SetDeadlines(hostlimit.Deadlines{Dial: 1234 * time.Millisecond})
	t.Cleanup(func() { SetDeadlines(hostlimit.DefaultDeadlines) })
	r, err := NewRemote("ssh://git@127.0.0.1:22/repo.git", sshSecret(t))
	if err != nil {
		t.Fatal(err)
	}
	a, ok := r.Auth.(sshDialTimeout)
	if !ok {
		t.Fatalf("SSH auth is %T, want the dial deadline wrapper", r.Auth)
	}
	cfg, err := a.ClientConfig()
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Timeout != 1234*time.Millisecond {
		t.Errorf("ssh dial timeout %s, want 1.234s", cfg.Timeout)
	}
	if cfg.HostKeyCallback == nil {
		t.Error("the wrapper lost the host key callback")
	}
}

func sshSecret(t *testing.T) map[string][]byte {
	key, pub := sshtest.NewKey(t, "")
	return map[string][]byte{"identity": key, "known_hosts": []byte("127.0.0.1 " + pub + "\n")}
}
