// Package release holds helm-controller's Helm work, free of controller-runtime: the actions on
// one release (Actions, run with the Helm SDK by Helm), what a HelmRelease's spec asks of each
// action, the labels and history of stored revisions, composing values, and reading and
// post-rendering manifests. Waiting for health and writing objects stay with the controller,
// which owns the clients.
package release
