module github.com/plumb-dev/plumb/hack

go 1.26.0

require (
	github.com/plumb-dev/plumb/shared v0.0.0-00010101000000-000000000000
	github.com/plumb-dev/plumb/source-controller/api v0.0.0-00010101000000-000000000000
)

replace (
	github.com/plumb-dev/plumb/shared => ../shared
	github.com/plumb-dev/plumb/source-controller/api => ../source-controller/api
)
