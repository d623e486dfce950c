package manager

import (
	"testing"

	"k8s.io/apimachinery/pkg/labels"
)

func TestLeaderElectionID(t *testing.T) {
	parse := func(s string) labels.Selector {
		t.Helper()
		sel, err := labels.Parse(s)
		if err != nil {
			t.Fatal(err)
		}
		return sel
	}
	unsharded := leaderElectionID("apply-controller", labels.Everything())
	if unsharded != "apply-controller.plumb.dev" {
		t.Errorf("without a selector: %q, want the lease of earlier releases, apply-controller.plumb.dev", unsharded)
	}
	if got := leaderElectionID("apply-controller", parse("")); got != unsharded {
		t.Errorf("an empty selector: %q, want %q", got, unsharded)
	}
	shard1 := leaderElectionID("apply-controller", parse("sharding.fluxcd.io/key in (shard1)"))
	shard2 := leaderElectionID("apply-controller", parse("sharding.fluxcd.io/key in (shard2)"))
	for _, id := range []string{shard1, shard2} {
		if id == unsharded {
			t.Errorf("a shard shares the lease of the unsharded controller: %q", id)
		}
		if len(id) > 63 {
			t.Errorf("%q is longer than a lease name may be", id)
		}
	}
	if shard1 == shard2 {
		t.Errorf("two shards share the lease %q", shard1)
	}
	// Replicas of one shard must agree however the flag was spelled.
	if got := leaderElectionID("apply-controller", parse("sharding.fluxcd.io/key in ( shard1 )")); got != shard1 {
		t.Errorf("the same selector spelled otherwise: %q, want %q", got, shard1)
	}
	if got := leaderElectionID("helm-controller", parse("sharding.fluxcd.io/key in (shard1)")); got == shard1 {
		t.Errorf("two controllers share the lease %q", got)
	}
}
