package notify

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	. "github.com/onsi/gomega"

	"github.com/plumb-dev/plumb/notification-controller/internal/githosttest"
)

const sampleSHA = "1a2b3c4d5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b"

// commenters are the pull request comment types, each made for a loopback host of its
// flavour.
var commenters = []struct {
	flavour githosttest.Flavour
	make    func(h *githosttest.Server, key string) Sender
}{
	{githosttest.GitHub, func(h *githosttest.Server, key string) Sender {
		return &GitHubPullRequestComment{Repository: h.Repository(), APIURL: h.API, Token: h.Token, Key: key}
	}},
	{githosttest.GitLab, func(h *githosttest.Server, key string) Sender {
		return &GitLabMergeRequestComment{Repository: h.Repository(), Token: h.Token, Key: key}
	}},
	{githosttest.Gitea, func(h *githosttest.Server, key string) Sender {
		return &GiteaPullRequestComment{Repository: h.Repository(), Token: h.Token, Key: key}
	}},
}

// Each type keeps ONE comment per object on the pull request of the event's commit: the first
// event creates it, the next ones edit it in place, found by its marker among pages of other
// comments. Someone else's comment with the same marker is left alone, another object and
// another Provider get comments of their own.
func TestPullRequestComments_OnePerObjectUpdatedInPlace(t *testing.T) {
	for _, tc := range commenters {
		t.Run(string(tc.flavour), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			h := githosttest.New(t, tc.flavour)
			h.AddPull(githosttest.Pull{Number: 7, State: "open", Head: sampleSHA})
			h.AddPull(githosttest.Pull{Number: 3, State: "closed", Head: sampleSHA}) // closed unmerged: left alone
			h.AddComment(githosttest.Comment{Number: 7, Author: "alice", Body: "LGTM"})
			h.AddComment(githosttest.Comment{Number: 7, Author: "bob", Body: "nit: typo"})
			s := tc.make(h, "uid-1")

			failed := sample
			failed.Severity, failed.Reason, failed.Message = "error", "BuildFailed", "kustomize build ./apps: ```accumulating``` resources"
			g.Expect(s.Send(ctx, failed)).To(Succeed())
			comments := h.Comments(7)
			g.Expect(comments).To(HaveLen(3))
			mine := comments[2]
			g.Expect(mine.Author).To(Equal(h.Login))
			g.Expect(mine.Body).To(HavePrefix("<!-- plumb-comment uid-1 Kustomization/shop/api -->\n❌ **Kustomization/shop/api** — `BuildFailed`"))
			g.Expect(mine.Body).To(ContainSubstring("````text\nkustomize build ./apps: ```accumulating``` resources\n````"))
			g.Expect(mine.Body).To(And(ContainSubstring("| revision | `main@sha1:1a2b3c4d5e6f` |"), ContainSubstring("| cluster | eu-1 |")))

			// Someone copies the marker into a comment of their own: it is not ours to edit.
			h.AddComment(githosttest.Comment{Number: 7, Author: "mallory", Body: mine.Body})
			g.Expect(s.Send(ctx, sample)).To(Succeed())
			comments = h.Comments(7)
			g.Expect(comments).To(HaveLen(4), "the second event edits, it does not add")
			g.Expect(comments[2].ID).To(Equal(mine.ID))
			g.Expect(comments[2].Body).To(ContainSubstring("✅ **Kustomization/shop/api** — `Succeeded`"))
			g.Expect(comments[3].Body).To(ContainSubstring("❌"), "mallory's comment is untouched")
			g.Expect(h.Comments(3)).To(BeEmpty())

			other := sample
			other.Name = "web"
			g.Expect(s.Send(ctx, other)).To(Succeed())
			g.Expect(tc.make(h, "uid-2").Send(ctx, sample)).To(Succeed())
			g.Expect(h.Comments(7)).To(HaveLen(6), "one comment per object and Provider")
			for _, r := range h.Requests() {
				g.Expect(r.Method + " " + r.Path).NotTo(ContainSubstring("/3/"))
			}
		})
	}
}

// Without an open pull request whose head is the commit, the pull request that merged it gets
// the comment; a commit of no pull request, or a revision without a commit, gets none; an
// Alert's change_request names the pull request itself, as Flux's metadata key does.
func TestPullRequestComments_WhichPullRequest(t *testing.T) {
	merge := "ffffffffffffffffffffffffffffffffffffffff"
	for _, tc := range commenters {
		t.Run(string(tc.flavour), func(t *testing.T) {
			g := NewWithT(t)
			ctx := context.Background()
			h := githosttest.New(t, tc.flavour)
			h.AddPull(githosttest.Pull{Number: 4, State: "open", Head: "0000000000000000000000000000000000000000"})
			h.AddPull(githosttest.Pull{Number: 5, State: "merged", Head: "1111111111111111111111111111111111111111", MergeCommit: merge})
			s := tc.make(h, "uid")

			deployed := sample
			deployed.Revision = "main@sha1:" + merge
			g.Expect(s.Send(ctx, deployed)).To(Succeed())
			g.Expect(h.Comments(5)).To(HaveLen(1))

			g.Expect(s.Send(ctx, sample)).To(Succeed(), "a commit of no pull request")
			noCommit := sample
			noCommit.Revision = "v1.0.0@sha256:abcd"
			g.Expect(s.Send(ctx, noCommit)).To(Succeed())
			g.Expect(h.Comments(4)).To(BeEmpty())

			named := noCommit
			named.Metadata = map[string]string{ChangeRequestKey: "4", "env": "preview"}
			g.Expect(s.Send(ctx, named)).To(Succeed())
			g.Expect(h.Comments(4)).To(HaveLen(1))
			g.Expect(h.Comments(4)[0].Body).NotTo(ContainSubstring(ChangeRequestKey))
			named.Metadata = map[string]string{ChangeRequestKey: "four"}
			g.Expect(s.Send(ctx, named)).To(MatchError(`eventMetadata change_request is "four", not a pull or merge request number`))
		})
	}
}

// The requests are the ones the hosts document: GitHub's with the API version header, each
// with its host's credential header, bodies of exactly one field.
func TestPullRequestComments_Requests(t *testing.T) {
	for _, tc := range commenters {
		t.Run(string(tc.flavour), func(t *testing.T) {
			g := NewWithT(t)
			h := githosttest.New(t, tc.flavour)
			h.AddPull(githosttest.Pull{Number: 9, State: "open", Head: sampleSHA})
			s := tc.make(h, "uid")
			g.Expect(s.Send(context.Background(), sample)).To(Succeed())
			g.Expect(s.Send(context.Background(), sample)).To(Succeed())
			var calls []string
			for _, r := range h.Requests() {
				calls = append(calls, r.Method+" "+r.Path)
				if r.Method == "POST" || r.Method == "PATCH" || r.Method == "PUT" {
					var body struct {
						Body string `json:"body"`
					}
					dec := json.NewDecoder(strings.NewReader(string(r.Body)))
					dec.DisallowUnknownFields()
					g.Expect(dec.Decode(&body)).To(Succeed())
					g.Expect(r.Header.Get("Content-Type")).To(Equal("application/json"))
				}
				if tc.flavour == githosttest.GitHub {
					g.Expect(r.Header.Get("X-GitHub-Api-Version")).To(Equal("2022-11-28"))
					g.Expect(r.Header.Get("Accept")).To(Equal("application/vnd.github+json"))
				}
			}
			want := map[githosttest.Flavour][]string{
				githosttest.GitHub: {
					"GET /repos/acme/shop/commits/" + sampleSHA + "/pulls", "GET /user", "GET /repos/acme/shop/issues/9/comments", "POST /repos/acme/shop/issues/9/comments",
					"GET /repos/acme/shop/commits/" + sampleSHA + "/pulls", "GET /repos/acme/shop/issues/9/comments", "PATCH /repos/acme/shop/issues/comments/101"},
				githosttest.GitLab: {
					"GET /api/v4/projects/acme%2Fshop/repository/commits/" + sampleSHA + "/merge_requests", "GET /api/v4/user",
					"GET /api/v4/projects/acme%2Fshop/merge_requests/9/notes", "POST /api/v4/projects/acme%2Fshop/merge_requests/9/notes",
					"GET /api/v4/projects/acme%2Fshop/repository/commits/" + sampleSHA + "/merge_requests",
					"GET /api/v4/projects/acme%2Fshop/merge_requests/9/notes", "PUT /api/v4/projects/acme%2Fshop/merge_requests/9/notes/101"},
				githosttest.Gitea: {
					"GET /api/v1/repos/acme/shop/pulls", "GET /api/v1/user", "GET /api/v1/repos/acme/shop/issues/9/comments", "POST /api/v1/repos/acme/shop/issues/9/comments",
					"GET /api/v1/repos/acme/shop/pulls", "GET /api/v1/repos/acme/shop/issues/9/comments", "PATCH /api/v1/repos/acme/shop/issues/comments/101"},
			}[tc.flavour]
			g.Expect(calls).To(Equal(want), "the token's user is asked once per sender")
		})
	}
}

// A GitHub App's comments are its bot's: with an app token the comment to edit is the bot's
// one with the marker, never a person's.
func TestGitHubPullRequestComment_App(t *testing.T) {
	g := NewWithT(t)
	h := githosttest.New(t, githosttest.GitHub)
	h.Login = "plumb-app[bot]"
	h.AddPull(githosttest.Pull{Number: 2, State: "open", Head: sampleSHA})
	marker := commentMarker("uid", sample)
	h.AddComment(githosttest.Comment{Number: 2, Author: "eve", Body: marker})
	s := &GitHubPullRequestComment{Repository: h.Repository(), APIURL: h.API, App: true, Key: "uid",
		TokenSource: func(context.Context) (string, error) { return h.Token, nil }}
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	g.Expect(s.Send(context.Background(), sample)).To(Succeed())
	comments := h.Comments(2)
	g.Expect(comments).To(HaveLen(2))
	g.Expect(comments[0].Body).To(Equal(marker), "eve's comment is not the app's")
	g.Expect(comments[1].Author).To(Equal("plumb-app[bot]"))
	for _, r := range h.Requests() {
		g.Expect(r.Path).NotTo(Equal("/user"), "an app's installation token has no user")
	}
}

func TestCommentBody(t *testing.T) {
	g := NewWithT(t)
	n := sample
	n.Time = time.Date(2026, 12, 6, 10, 0, 0, 0, time.UTC)
	n.Metadata = map[string]string{"team": "a|b\nc", ChangeRequestKey: "3"}
	got := commentBody("<!-- m -->", n)
	g.Expect(got).To(Equal("<!-- m -->\n✅ **Kustomization/shop/api** — `Succeeded`\n\n```text\nDeployment/shop/api configured\n```\n\n" +
		"| | |\n|---|---|\n| revision | `main@sha1:1a2b3c4d5e6f` |\n| summary | prod |\n| team | a\\|b c |\n\n<sub>Plumb · 2026-12-06 10:00:00 UTC</sub>\n"))
}

func TestChangeRequestsOf(t *testing.T) {
	sha := "abc"
	cases := []struct {
		name string
		in   []changeRequest
		want []int64
	}{
		{"open heads win", []changeRequest{{number: 1, merged: true}, {number: 2, open: true, head: "abc"}, {number: 3, open: true, head: "ABC"}}, []int64{2, 3}},
		{"else the merged one", []changeRequest{{number: 1, open: true, head: "def"}, {number: 4, merged: true}, {number: 5, merged: true}}, []int64{4}},
		{"none", []changeRequest{{number: 1, open: true, head: "def"}, {number: 2}}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			NewWithT(t).Expect(changeRequestsOf(sha, tc.in)).To(Equal(tc.want))
		})
	}
}
