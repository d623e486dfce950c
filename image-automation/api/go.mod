module github.com/plumb-dev/plumb/image-automation/api

go 1.26.0

require (
	github.com/fluxcd/pkg/apis/meta v1.33.0
	k8s.io/apimachinery v0.37.2
)
