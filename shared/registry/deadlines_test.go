package registry

import (
	"context"
	"testing"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/v1/remote"

	"github.com/plumb-dev/plumb/shared/hostlimit"
	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

func TestOptions_ARegistryThatNeverAnswersFailsAtTheResponseHeaderDeadline(t *testing.T) {
	SetDeadlines(hostlimit.Deadlines{Dial: time.Second, TLSHandshake: time.Second, ResponseHeader: 300 * time.Millisecond})
	t.Cleanup(func() { SetDeadlines(hostlimit.DefaultDeadlines) })
	addr := nettest.NewHanging(t).Addr
	ca, _, _ := selfSigned(t)
	for _, tc := range []struct {
		name  string
		creds Credentials
	}{
		{"shared transport", Credentials{Insecure: true}},
		// A transport of its own (a CA) keeps the deadlines; the TLS handshake deadline ends it.
		{"own transport", Credentials{CA: ca}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			repo, err := name.NewRepository(addr+"/app", tc.creds.NameOptions()...)
			if err != nil {
				t.Fatal(err)
			}
			opts, err := Options(repo, tc.creds)
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			start := time.Now()
			if _, err := remote.List(repo, append(opts, remote.WithContext(ctx))...); err == nil {
				t.Fatal("a registry that never answers listed tags")
			}
			if d := time.Since(start); d > 10*time.Second || ctx.Err() != nil {
				t.Errorf("listing failed after %s (overall timeout: %v), want about a 300ms-1s deadline", d, ctx.Err())
			}
		})
	}
}
