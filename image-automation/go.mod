module github.com/plumb-dev/plumb/image-automation

go 1.26.0

require (
	github.com/Masterminds/semver/v3 v3.5.0
	github.com/fluxcd/pkg/apis/meta v1.33.0
	github.com/fluxcd/pkg/runtime v0.117.0
	github.com/go-git/go-git/v5 v5.19.3
	github.com/google/go-containerregistry v0.22.1
	github.com/onsi/gomega v1.43.0
	github.com/plumb-dev/plumb/image-automation/api v0.0.0-00010101000000-000000000000
	github.com/plumb-dev/plumb/shared v0.0.0-00010101000000-000000000000
	k8s.io/api v0.37.2
	k8s.io/apimachinery v0.37.2
	k8s.io/client-go v0.37.2
	sigs.k8s.io/controller-runtime v0.25.2
	sigs.k8s.io/kustomize/kyaml v0.21.2
)

replace (
	github.com/plumb-dev/plumb/image-automation/api => ./api
	github.com/plumb-dev/plumb/shared => ../shared
)
