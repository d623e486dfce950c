package git

import (
	"net/http"
	"sync/atomic"

	"github.com/go-git/go-git/v5/plumbing/transport/client"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"

	"github.com/plumb-dev/plumb/shared/hostlimit"
)

// deadlines are the connect and first-byte deadlines of every Git operation of the process.
var deadlines atomic.Pointer[hostlimit.Deadlines]

func init() { SetDeadlines(hostlimit.DefaultDeadlines) }

// SetDeadlines bounds connecting (dial, TLS handshake) and the wait for the first answer of
// every Git operation of the process, inside its spec.timeout: smart HTTP(S) gets a transport
// with the three deadlines (go-git's transports are per process, so this is too); SSH gets the
// dial deadline on remotes made after the call. Call it before the controllers start.
func SetDeadlines(d hostlimit.Deadlines) {
	deadlines.Store(&d)
	c := githttp.NewClient(&http.Client{Transport: d.Transport(nil)})
	client.InstallProtocol("http", c)
	client.InstallProtocol("https", c)
}

// sshDialTimeout gives an SSH key the dial deadline. go-git bounds only the TCP connect with
// ssh.ClientConfig.Timeout; the rest of an SSH exchange is bounded by the operation's context.
type sshDialTimeout struct {
	*gitssh.PublicKeys
}

func (k sshDialTimeout) ClientConfig() (*ssh.ClientConfig, error) {
	cfg, err := k.PublicKeys.ClientConfig()
	if err != nil {
		return nil, err
	}
	if d := deadlines.Load(); d != nil && d.Dial > 0 {
		cfg.Timeout = d.Dial
	}
	return cfg, nil
}
