module github.com/plumb-dev/plumb/source-controller

go 1.26.0

require (
	github.com/fluxcd/pkg/apis/meta v1.33.0
	github.com/fluxcd/pkg/gittestserver v0.25.0
	github.com/fluxcd/pkg/runtime v0.117.0
	github.com/go-git/go-git/v5 v5.19.3
	github.com/plumb-dev/plumb/shared v0.0.0-00010101000000-000000000000
	github.com/plumb-dev/plumb/source-controller/api v0.0.0-00010101000000-000000000000
	k8s.io/api v0.37.2
	k8s.io/apimachinery v0.37.2
	k8s.io/client-go v0.37.2
	sigs.k8s.io/controller-runtime v0.25.2
)

replace (
	github.com/plumb-dev/plumb/shared => ../shared
	github.com/plumb-dev/plumb/source-controller/api => ./api
)
