package registry

import (
	"flag"
	"fmt"

	"github.com/plumb-dev/plumb/shared/featuregate"
)

// CloudFlags are the controller flags of cloud workload identity, with Flux's names:
// --feature-gates=ObjectLevelWorkloadIdentity=true and --token-cache-max-size.
type CloudFlags struct {
	gates     featuregate.Gates
	cacheSize int
}

// Bind registers the flags.
func (f *CloudFlags) Bind(fs *flag.FlagSet) {
	f.gates = featuregate.New(ObjectLevelWorkloadIdentity)
	fs.Var(f.gates, "feature-gates", "Features on or off, Name=true|false separated by commas (Flux's flag). "+
		ObjectLevelWorkloadIdentity+" (default false): with a cloud provider, an object's serviceAccountName is its cloud identity, "+
		"obtained by a token exchange for that ServiceAccount.")
	fs.IntVar(&f.cacheSize, "token-cache-max-size", DefaultTokenCacheSize, "Cloud registry tokens kept in memory until shortly before they expire, one for each identity and registry.")
}

// Cloud makes the process's Cloud from the flags.
func (f *CloudFlags) Cloud() (*Cloud, error) {
	if f.cacheSize <= 0 {
		return nil, fmt.Errorf("--token-cache-max-size must be positive, got %d", f.cacheSize)
	}
	return NewCloud(CloudOptions{CacheSize: f.cacheSize, ObjectLevel: f.gates[ObjectLevelWorkloadIdentity]})
}
