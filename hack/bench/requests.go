package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"k8s.io/client-go/rest"
)

// requests counts a controller's calls to the Kubernetes API, as client-go reports them on the
// controller's metrics endpoint (rest_client_requests_total, registered by controller-runtime).
type requests struct {
	all    float64 // every request, watches and lists included
	writes float64 // POST, PUT, PATCH and DELETE
}

func (r requests) minus(o requests) requests {
	return requests{all: r.all - o.all, writes: r.writes - o.writes}
}

// scrapeRequests reads the counters of the metrics endpoint at addr; a controller just started
// may not listen yet, so it tries for half a minute.
func scrapeRequests(addr string) (requests, error) {
	var resp *http.Response
	var err error
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		if resp, err = http.Get("http://" + addr + "/metrics"); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		return requests{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return requests{}, fmt.Errorf("metrics of %s: %s", addr, resp.Status)
	}
	return parseRequests(resp.Body)
}

// sumCounter sums the counter name over its label values on the metrics endpoint at addr.
func sumCounter(addr, name string) (float64, error) {
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	var sum float64
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		rest, ok := strings.CutPrefix(sc.Text(), name)
		if !ok || rest == "" || (rest[0] != '{' && rest[0] != ' ') {
			continue
		}
		if i := strings.LastIndexByte(rest, '}'); i >= 0 {
			rest = rest[i+1:]
		}
		if f := strings.Fields(rest); len(f) > 0 {
			v, err := strconv.ParseFloat(f[0], 64)
			if err != nil {
				return 0, fmt.Errorf("%s: %w", name, err)
			}
			sum += v
		}
	}
	return sum, sc.Err()
}

// parseRequests sums rest_client_requests_total over its label values (code, host, method) in
// the Prometheus text format.
func parseRequests(r io.Reader) (requests, error) {
	return parseCounter(r, "rest_client_requests_total", "method")
}

// scrapeAPIServer reads the API server's own count of the requests it served, of every client
// (apiserver_request_total; server-side applies are its verb APPLY).
func scrapeAPIServer(cfg *rest.Config) (requests, error) {
	hc, err := rest.HTTPClientFor(cfg)
	if err != nil {
		return requests{}, err
	}
	resp, err := hc.Get(strings.TrimSuffix(cfg.Host, "/") + "/metrics")
	if err != nil {
		return requests{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return requests{}, fmt.Errorf("metrics of the API server: %s", resp.Status)
	}
	return parseCounter(resp.Body, "apiserver_request_total", "verb")
}

// parseCounter sums the counter name over its label values in the Prometheus text format, and
// apart the writes: the values of the label verb that write (POST, PUT, PATCH, APPLY, DELETE).
func parseCounter(r io.Reader, name, verb string) (requests, error) {
	var out requests
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, name)
		if !ok || (rest != "" && rest[0] != '{' && rest[0] != ' ') {
			continue // a comment, or another metric whose name starts the same
		}
		labels := ""
		if strings.HasPrefix(rest, "{") {
			end := strings.LastIndexByte(rest, '}')
			if end < 0 {
				return requests{}, fmt.Errorf("%s: unterminated labels: %q", name, line)
			}
			labels, rest = rest[1:end], rest[end+1:]
		}
		f := strings.Fields(rest)
		if len(f) == 0 {
			return requests{}, fmt.Errorf("%s: no value: %q", name, line)
		}
		v, err := strconv.ParseFloat(f[0], 64)
		if err != nil {
			return requests{}, fmt.Errorf("%s: %w", name, err)
		}
		out.all += v
		switch labelValue(labels, verb) {
		case "POST", "PUT", "PATCH", "APPLY", "DELETE", "DELETECOLLECTION":
			out.writes += v
		}
	}
	return out, sc.Err()
}

// labelValue is the value of one label in a Prometheus label set (`a="x",b="y"`); the values
// read here hold no escaped quotes.
func labelValue(labels, key string) string {
	for _, kv := range strings.Split(labels, ",") {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.TrimSpace(k) == key {
			return strings.Trim(strings.TrimSpace(v), `"`)
		}
	}
	return ""
}
