package notify

import (
	"context"
	"encoding/json"
	"errors"
	"testing"
	"time"

	"cloud.google.com/go/pubsub/v2"
	"cloud.google.com/go/pubsub/v2/apiv1/pubsubpb"
	"cloud.google.com/go/pubsub/v2/pstest"
	. "github.com/onsi/gomega"
	"google.golang.org/api/option"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
)

// pstestOptions connect a Pub/Sub client to Google's in-process fake.
func pstestOptions(srv *pstest.Server) []option.ClientOption {
	return []option.ClientOption{option.WithEndpoint(srv.Addr), option.WithoutAuthentication(),
		option.WithGRPCDialOption(grpc.WithTransportCredentials(insecure.NewCredentials()))}
}

// Against pstest, Google's own implementation of the Pub/Sub protocol: the message is the JSON
// of generic with the Secret's headers as attributes; a missing topic is not retried, an
// unavailable service is.
func TestGooglePubSubPublishes(t *testing.T) {
	g := NewWithT(t)
	ctx := context.Background()
	srv := pstest.NewServer()
	defer srv.Close()
	admin, err := pubsub.NewClient(ctx, "plumb-test", pstestOptions(srv)...)
	g.Expect(err).NotTo(HaveOccurred())
	defer admin.Close()
	_, err = admin.TopicAdminClient.CreateTopic(ctx, &pubsubpb.Topic{Name: "projects/plumb-test/topics/deploys"})
	g.Expect(err).NotTo(HaveOccurred())

	ps := &GooglePubSub{Project: "plumb-test", Topic: "deploys", Attributes: map[string]string{"team": "shop"}, ClientOptions: pstestOptions(srv)}
	g.Expect(ps.Send(ctx, failing)).To(Succeed())
	msgs := srv.Messages()
	g.Expect(msgs).To(HaveLen(1))
	g.Expect(msgs[0].Topic).To(Equal("projects/plumb-test/topics/deploys"))
	g.Expect(msgs[0].Attributes).To(Equal(map[string]string{"team": "shop"}))
	var got Notification
	g.Expect(json.Unmarshal(msgs[0].Data, &got)).To(Succeed())
	want := failing
	want.Recovers = nil
	g.Expect(got).To(Equal(want))

	var re *RetryableError
	err = (&GooglePubSub{Project: "plumb-test", Topic: "missing", ClientOptions: pstestOptions(srv)}).Send(ctx, failing)
	g.Expect(err).To(MatchError(ContainSubstring("google pub/sub topic projects/plumb-test/topics/missing: NotFound")))
	g.Expect(errors.As(err, &re)).To(BeFalse(), "a missing topic is not retried")

	denied := pstest.NewServer(pstest.WithErrorInjection("Publish", codes.PermissionDenied, "User not authorized to perform this action."))
	defer denied.Close()
	err = (&GooglePubSub{Project: "plumb-test", Topic: "deploys", ClientOptions: pstestOptions(denied)}).Send(ctx, failing)
	g.Expect(err).To(MatchError(ContainSubstring("PermissionDenied: User not authorized")))
	g.Expect(errors.As(err, &re)).To(BeFalse(), "a refusal is not retried")

	down := pstest.NewServer(pstest.WithErrorInjection("Publish", codes.Unavailable, "try again"))
	defer down.Close()
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	start := time.Now()
	err = (&GooglePubSub{Project: "plumb-test", Topic: "deploys", ClientOptions: pstestOptions(down)}).Send(short, failing)
	g.Expect(errors.As(err, &re)).To(BeTrue(), "an unavailable service is retried: %v", err)
	g.Expect(time.Since(start)).To(BeNumerically("<", 10*time.Second), "the delivery's deadline bounds the client's own retries")
}

// Only a service account key is taken: an external account's configuration would have the
// controller read files and call URLs of the tenant's choosing.
func TestGooglePubSubCredentials(t *testing.T) {
	g := NewWithT(t)
	for _, key := range []string{
		`{"type": "external_account", "audience": "x", "credential_source": {"file": "/var/run/secrets/kubernetes.io/serviceaccount/token"}, "token_url": "https://sts.example.com/token"}`,
		`{"type": "authorized_user"}`,
		`not json`,
	} {
		err := (&GooglePubSub{Project: "p", Topic: "t", CredentialsJSON: []byte(key)}).Send(context.Background(), failing)
		g.Expect(err).To(MatchError(ContainSubstring("is not a service account key")), key)
	}
}
