// Package metrics owns the Prometheus metrics every Plumb controller exports on --metrics-addr,
// next to controller-runtime's own (reconcile durations, work queues): the state of each
// object's conditions and the size of each published artifact.
package metrics

import (
	"github.com/prometheus/client_golang/prometheus"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	crmetrics "sigs.k8s.io/controller-runtime/pkg/metrics"
)

var (
	condition = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plumb_condition",
		Help: "1 for the status (True, False, Unknown) each condition of an object has now, 0 for the others.",
	}, []string{"kind", "namespace", "name", "type", "status"})

	artifactSize = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "plumb_artifact_size_bytes",
		Help: "Size of the artifact an object publishes now.",
	}, []string{"kind", "namespace", "name"})
)

func init() {
	crmetrics.Registry.MustRegister(condition, artifactSize)
}

// conditionTypes are the kstatus condition types every kind reports.
var conditionTypes = []string{"Ready", "Reconciling", "Stalled"}

// RecordConditions sets the condition gauges of an object from its conditions; a type the object
// does not have reads 0 for every status.
func RecordConditions(kind, namespace, name string, conds []metav1.Condition) {
	for _, t := range conditionTypes {
		var now metav1.ConditionStatus
		for _, c := range conds {
			if c.Type == t {
				now = c.Status
			}
		}
		for _, s := range []metav1.ConditionStatus{metav1.ConditionTrue, metav1.ConditionFalse, metav1.ConditionUnknown} {
			v := 0.0
			if s == now {
				v = 1
			}
			condition.WithLabelValues(kind, namespace, name, t, string(s)).Set(v)
		}
	}
}

// RecordArtifactSize sets the artifact size gauge of an object.
func RecordArtifactSize(kind, namespace, name string, size int64) {
	artifactSize.WithLabelValues(kind, namespace, name).Set(float64(size))
}

// Forget drops every series of a deleted object.
func Forget(kind, namespace, name string) {
	labels := prometheus.Labels{"kind": kind, "namespace": namespace, "name": name}
	condition.DeletePartialMatch(labels)
	artifactSize.DeletePartialMatch(labels)
}
