package notify

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/shared/testing/nettest"
)

// Through a proxy, the policy still holds: the destination is checked before the proxy is
// chosen, and the proxy's own address when it is connected to.
func TestAddressPolicy_ClientVia(t *testing.T) {
	g := NewWithT(t)
	sink := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer sink.Close()
	px := nettest.NewProxy(t, "", "")
	via := http.ProxyURL(px.URL)
	get := func(c *http.Client, url string) error {
		req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, url, nil)
		resp, err := c.Do(req)
		if err == nil {
			_ = resp.Body.Close()
		}
		return err
	}
	loopback := &AddressPolicy{Allow: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}}

	// An allowed destination goes through the proxy.
	g.Expect(get(loopback.ClientVia(via, nil), sink.URL+"/hook")).To(Succeed())
	g.Expect(px.Served(strings.TrimPrefix(sink.URL, "http://"))).To(Equal(1))

	// The metadata service is refused before any proxy is asked.
	err := get(loopback.ClientVia(via, nil), "http://169.254.169.254/latest/meta-data/")
	var ar *AddressRefusedError
	g.Expect(errors.As(err, &ar)).To(BeTrue(), "%v", err)
	g.Expect(ar.Why).To(ContainSubstring("link-local"))

	// A proxy on a refused address is not connected to, whatever the destination.
	err = get((&AddressPolicy{}).ClientVia(via, nil), "http://10.0.0.1/hook")
	g.Expect(errors.As(err, &ar)).To(BeTrue(), "%v", err)
	g.Expect(ar.Addr).To(Equal(px.Addr))
	g.Expect(px.Total()).To(Equal(1))
}
