package local

import (
	"io"
	"log"
	"net/http/httptest"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/google/go-containerregistry/pkg/registry"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// ImageRegistry is an in-process OCI registry on loopback holding one image repository, for
// the image automation tests.
type ImageRegistry struct {
	server *httptest.Server
	// Image is the repository's reference, host/team/web.
	Image string
}

// StartImageRegistry starts the registry; Close stops it.
func StartImageRegistry() *ImageRegistry {
	s := httptest.NewServer(registry.New(registry.Logger(log.New(io.Discard, "", 0))))
	return &ImageRegistry{server: s, Image: strings.TrimPrefix(s.URL, "http://") + "/team/web"}
}

// Close stops the registry.
func (r *ImageRegistry) Close() { r.server.Close() }

// Push pushes a small random image as Image:tag, as CI would.
func (r *ImageRegistry) Push(tag string) error {
	ref, err := name.NewTag(r.Image+":"+tag, name.Insecure)
	if err != nil {
		return err
	}
	img, err := random.Image(128, 1)
	if err != nil {
		return err
	}
	return remote.Write(ref, img)
}

// WebDeployment is the manifest of a Deployment web (no replicas) running image:tag, marked for
// the ImagePolicy policy ("<namespace>:<name>") as image-automation's setters expect.
func WebDeployment(image, tag, policy string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
spec:
  replicas: 0
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: web
          image: ` + image + `:` + tag + ` # {"$imagepolicy": "` + policy + `"}
`
}
