package registry

import "github.com/fluxcd/pkg/cache"

// TokenCache is the Cloud's bounded token cache, for other users of fluxcd/pkg/auth in the same
// process (kubeconfig ConfigMaps), so that the process keeps one cache of one size.
func (c *Cloud) TokenCache() *cache.TokenCache { return c.cache }
