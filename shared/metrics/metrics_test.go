package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestRecordAndForget(t *testing.T) {
	RecordConditions("GitRepository", "ns", "a", []metav1.Condition{
		{Type: "Ready", Status: metav1.ConditionFalse},
		{Type: "Reconciling", Status: metav1.ConditionTrue},
	})
	RecordArtifactSize("GitRepository", "ns", "a", 1234)

	cases := []struct {
		typ, status string
		want        float64
	}{
		{"Ready", "False", 1}, {"Ready", "True", 0}, {"Ready", "Unknown", 0},
		{"Reconciling", "True", 1}, {"Stalled", "True", 0}, {"Stalled", "False", 0},
	}
	for _, tc := range cases {
		got := testutil.ToFloat64(condition.WithLabelValues("GitRepository", "ns", "a", tc.typ, tc.status))
		if got != tc.want {
			t.Errorf("%s=%s: got %v, want %v", tc.typ, tc.status, got, tc.want)
		}
	}
	if got := testutil.ToFloat64(artifactSize.WithLabelValues("GitRepository", "ns", "a")); got != 1234 {
		t.Errorf("artifact size %v, want 1234", got)
	}

	Forget("GitRepository", "ns", "a")
	if n := testutil.CollectAndCount(condition) + testutil.CollectAndCount(artifactSize); n != 0 {
		t.Errorf("%d series left after Forget", n)
	}
	expected := `# HELP plumb_artifact_size_bytes Size of the artifact an object publishes now.
# TYPE plumb_artifact_size_bytes gauge
`
	if err := testutil.CollectAndCompare(artifactSize, strings.NewReader(expected)); err != nil {
		t.Error(err)
	}
}
