package controller

import (
	"strings"
	"testing"
)

func TestRedact(t *testing.T) {
	err := redact(errorString(`ConfigMap "x" is invalid: data.key: Invalid value: "s3cr3t-value"`), []string{"s3cr3t-value", "ab"})
	if strings.Contains(err.Error(), "s3cr3t-value") || !strings.Contains(err.Error(), "<redacted>") {
		t.Fatalf("redact: %v", err)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
