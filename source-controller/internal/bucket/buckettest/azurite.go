package buckettest

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/storage/azblob"
)

// AzuriteVersion is the Azurite release the tests run: Microsoft's Azure Storage emulator, an
// npm package installed once into $PLUMB_CACHE/azurite-<version>/. 3.35.0 is the newest that
// runs on Node.js 20 (3.36 needs Node.js 21, 3.37 needs 22).
const AzuriteVersion = "3.35.0"

// Azurite's well-known development account (documented by Microsoft; not a secret).
const (
	AzuriteAccount = "devstoreaccount1"
	AzuriteKey     = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
)

// AzuritePath returns the cached azurite-blob program's path.
func AzuritePath() string {
	return filepath.Join(cacheDir(), "azurite-"+AzuriteVersion, "node_modules", ".bin", "azurite-blob")
}

var (
	azuriteOnce sync.Once
	azuriteErr  error
)

// AzuriteBinary returns azurite-blob, installing it with npm once when it is not cached.
func AzuriteBinary() (string, error) {
	azuriteOnce.Do(func() { azuriteErr = npmInstall(AzuritePath(), "azurite@"+AzuriteVersion) })
	return AzuritePath(), azuriteErr
}

// npmInstall installs pkg into the folder that holds node_modules of bin, unless bin is there,
// taking turns with other processes on a lock file.
func npmInstall(bin, pkg string) error {
	if _, err := os.Stat(bin); err == nil {
		return nil
	}
	dir := filepath.Dir(filepath.Dir(filepath.Dir(bin)))
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return err
	}
	defer lock.Close()
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX); err != nil {
		return err
	}
	if _, err := os.Stat(bin); err == nil {
		return nil // another process installed it meanwhile
	}
	cmd := exec.Command("npm", "install", "--no-audit", "--no-fund", "--prefix", dir, pkg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("npm install %s: %v: %s", pkg, err, lastLines(out.String(), 20))
	}
	return nil
}

// Azurite is a running Azurite Blob service, plain HTTP on loopback, with the development
// account's shared key.
type Azurite struct {
	// Endpoint is 127.0.0.1:port.
	Endpoint string
	proc     *process
}

// StartAzurite runs azurite-blob on a free loopback port, its data and log in dir.
func StartAzurite(dir string) (*Azurite, error) {
	bin, err := AzuriteBinary()
	if err != nil {
		return nil, err
	}
	addr, err := freeAddr()
	if err != nil {
		return nil, err
	}
	host, port, _ := strings.Cut(addr, ":")
	cmd := exec.Command(bin, "--blobHost", host, "--blobPort", port, "--location", filepath.Join(dir, "data"),
		"--skipApiVersionCheck", "--loose", "--disableProductStyleUrl")
	cmd.Dir = dir
	p, err := startProcess("azurite", dir, cmd, "http://"+addr+"/"+AzuriteAccount+"?comp=list")
	if err != nil {
		return nil, err
	}
	return &Azurite{Endpoint: addr, proc: p}, nil
}

// Stop ends the server.
func (a *Azurite) Stop() { a.proc.stop() }

// AccountURL is the development account's path-style URL.
func (a *Azurite) AccountURL() string { return "http://" + a.Endpoint + "/" + AzuriteAccount }

// Client is a client of the development account.
func (a *Azurite) Client() (*azblob.Client, error) {
	cred, err := azblob.NewSharedKeyCredential(AzuriteAccount, AzuriteKey)
	if err != nil {
		return nil, err
	}
	return azblob.NewClientWithSharedKeyCredential(a.AccountURL(), cred, nil)
}

// MakeContainer creates a container with the blobs (key → content).
func (a *Azurite) MakeContainer(ctx context.Context, name string, blobs map[string]string) error {
	c, err := a.Client()
	if err != nil {
		return err
	}
	if _, err := c.CreateContainer(ctx, name, nil); err != nil {
		return fmt.Errorf("create container %s: %w", name, err)
	}
	return a.Put(ctx, name, blobs)
}

// Put writes blobs (key → content) into a container; an empty content deletes the key.
func (a *Azurite) Put(ctx context.Context, container string, blobs map[string]string) error {
	c, err := a.Client()
	if err != nil {
		return err
	}
	for k, v := range blobs {
		if v == "" {
			if _, err := c.DeleteBlob(ctx, container, k, nil); err != nil {
				return err
			}
			continue
		}
		if _, err := c.UploadBuffer(ctx, container, k, []byte(v), nil); err != nil {
			return fmt.Errorf("put %s: %w", k, err)
		}
	}
	return nil
}

// ETag returns the blob's ETag as the service lists it (without the quotes of the ETag header).
func (a *Azurite) ETag(ctx context.Context, container, key string) (string, error) {
	c, err := a.Client()
	if err != nil {
		return "", err
	}
	pager := c.NewListBlobsFlatPager(container, &azblob.ListBlobsFlatOptions{Prefix: &key})
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return "", err
		}
		for _, b := range page.Segment.BlobItems {
			if *b.Name == key {
				return string(*b.Properties.ETag), nil
			}
		}
	}
	return "", fmt.Errorf("no blob %s in container %s", key, container)
}

// NewDownloads starts a proxy in front of Azurite that counts blob downloads: GETs of a blob's
// path (account/container/blob) without a comp= operation.
func (a *Azurite) NewDownloads(t testing.TB) *Downloads {
	return newDownloads(t, "http://"+a.Endpoint, func(r *http.Request) bool {
		return r.Method == http.MethodGet && !r.URL.Query().Has("comp") &&
			strings.Count(strings.Trim(r.URL.Path, "/"), "/") >= 2
	})
}
