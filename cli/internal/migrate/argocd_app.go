package migrate

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"

	"helm.sh/helm/v3/pkg/strvals"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// inCluster is the destination server of the cluster Argo CD runs in.
const inCluster = "https://kubernetes.default.svc"

// Intervals of the objects written. Argo CD polls Git every 3 minutes by default.
const (
	sourceInterval = "3m"
	applyInterval  = "10m"
)

// converter turns the Argo CD objects of one document into Plumb objects.
type converter struct {
	run  *argoRun
	file string
	// head is the comment above the Argo CD object, carried to the first object written.
	head     string
	objects  []*yaml.Node
	findings []Finding
	migrated bool
}

// find reports what cannot be migrated, at the line of n.
func (c *converter) find(n *yaml.Node, object, fieldPath, msg string) {
	line := 0
	if n != nil {
		line = n.Line
	}
	c.findings = append(c.findings, Finding{File: c.file, Line: line, Object: object, Field: fieldPath, Message: msg})
}

// app is one Application being migrated.
type app struct {
	*converter
	object string // Application/name, for findings
	name   string
	spec   *yaml.Node
	// targetNamespace is destination.namespace.
	targetNamespace string
	policy          syncPolicy
	// refs are the sources of a multi-source Application that only lend their files ($name).
	refs map[string]*yaml.Node
	// note is the head comment of the objects written.
	note string
}

// syncPolicy is what an Application's syncPolicy, ignoreDifferences and syncOptions ask for.
type syncPolicy struct {
	automated, prune, selfHeal bool
	// noPrune is the sync option Prune=false, which wins over automated.prune.
	noPrune         bool
	createNamespace *yaml.Node
	replace         bool
	retryLimit      *yaml.Node
	retryInterval   *yaml.Node
	// ignore are Kustomization spec.ignore / HelmRelease driftDetection.ignore rules.
	ignore []*yaml.Node
}

// application migrates an Argo CD Application.
func (c *converter) application(doc *yaml.Node) {
	meta := field(doc, "metadata")
	name := text(field(meta, "name"))
	a := &app{converter: c, object: "Application/" + name, name: name, spec: field(doc, "spec"), refs: map[string]*yaml.Node{}}
	if name == "" {
		c.find(doc, a.object, "metadata.name", "the Application has no name; give it one")
		return
	}
	if a.spec == nil {
		c.find(doc, a.object, "spec", "the Application has no spec")
		return
	}
	a.note = fmt.Sprintf("From Argo CD Application %s (%s:%d).", name, c.file, doc.Line)
	if c.head != "" {
		a.note = c.head + "\n" + a.note
	}
	var sources []*yaml.Node
	pairs(a.spec, func(k, v *yaml.Node) {
		p := "spec." + k.Value
		switch k.Value {
		case "project":
			if text(v) != "default" && text(v) != "" {
				c.find(k, a.object, p, fmt.Sprintf("Argo CD project %q limits what this Application may deploy, and where; Plumb has no projects: set spec.serviceAccountName on the objects written to a ServiceAccount whose RBAC grants what the project allowed (apply-controller impersonates it)", text(v)))
			}
		case "source":
			sources = append(sources, v)
		case "sources":
			sources = append(sources, items(v)...)
		case "destination":
			a.destination(v)
		case "syncPolicy":
			a.syncPolicy(v)
		case "ignoreDifferences":
			a.ignoreDifferences(v)
		case "info", "revisionHistoryLimit":
			// Argo CD's own bookkeeping: nothing is deployed differently without it.
		default:
			c.find(k, a.object, p, "Plumb has no counterpart of this field; remove it, or see docs/guides/migrate-from-argocd.md")
		}
	})
	if len(sources) == 0 {
		c.find(a.spec, a.object, "spec.source", "the Application has no source")
		return
	}
	if !a.policy.automated {
		at := field(a.spec, "syncPolicy")
		if at == nil {
			at = a.spec
		}
		c.find(at, a.object, "spec.syncPolicy.automated", "Argo CD syncs this Application only when asked, Plumb at every interval: the objects are written with spec.suspend: true; remove it (or run `plumb resume`) when Plumb may apply")
	}
	// Sources that only lend their files to the others ($name/...) make no object.
	var deploy []*yaml.Node
	for _, s := range sources {
		if ref := text(field(s, "ref")); ref != "" && field(s, "path") == nil && field(s, "chart") == nil {
			a.refs[ref] = s
			continue
		}
		deploy = append(deploy, s)
	}
	for i, s := range deploy {
		objName := name
		if len(deploy) > 1 {
			objName = fmt.Sprintf("%s-%d", name, i+1)
			if n := text(field(s, "name")); n != "" {
				objName = name + "-" + n
			}
		}
		a.source(s, dnsName(objName))
	}
	c.migrated = true
}

// destination maps spec.destination.
func (a *app) destination(d *yaml.Node) {
	pairs(d, func(k, v *yaml.Node) {
		p := "spec.destination." + k.Value
		switch k.Value {
		case "namespace":
			a.targetNamespace = text(v)
		case "server":
			if text(v) != inCluster {
				a.find(k, a.object, p, fmt.Sprintf("the Application deploys to another cluster (%s): put that cluster's kubeconfig in a Secret and set spec.kubeConfig.secretRef on the objects written", text(v)))
			}
		case "name":
			if text(v) != "in-cluster" {
				a.find(k, a.object, p, fmt.Sprintf("the Application deploys to the cluster Argo CD calls %q: put that cluster's kubeconfig in a Secret and set spec.kubeConfig.secretRef on the objects written", text(v)))
			}
		default:
			a.find(k, a.object, p, "Plumb has no counterpart of this field; remove it")
		}
	})
}

// syncPolicy reads spec.syncPolicy.
func (a *app) syncPolicy(sp *yaml.Node) {
	pairs(sp, func(k, v *yaml.Node) {
		p := "spec.syncPolicy." + k.Value
		switch k.Value {
		case "automated":
			a.policy.automated = true
			pairs(v, func(k, v *yaml.Node) {
				switch k.Value {
				case "prune":
					a.policy.prune = truthy(v)
				case "selfHeal":
					a.policy.selfHeal = truthy(v)
				case "enabled":
					a.policy.automated = truthy(v)
				case "allowEmpty":
					// Plumb applies an empty build like any other: prune removes what was applied.
				default:
					a.find(k, a.object, p+"."+k.Value, "Plumb has no counterpart of this field; remove it")
				}
			})
		case "syncOptions":
			for _, o := range items(v) {
				a.syncOption(o)
			}
		case "retry":
			a.policy.retryLimit = field(v, "limit")
			a.policy.retryInterval = field(field(v, "backoff"), "duration")
		case "managedNamespaceMetadata":
			a.find(k, a.object, p, "Plumb does not create the destination namespace of a Kustomization: add a Namespace with these labels and annotations to the source")
		default:
			a.find(k, a.object, p, "Plumb has no counterpart of this field; remove it")
		}
	})
}

// syncOption maps one of spec.syncPolicy.syncOptions.
func (a *app) syncOption(o *yaml.Node) {
	const p = "spec.syncPolicy.syncOptions"
	k, v, _ := strings.Cut(text(o), "=")
	on := strings.EqualFold(v, "true")
	switch {
	case k == "CreateNamespace":
		if on {
			a.policy.createNamespace = o
		}
	case k == "ServerSideApply", k == "ApplyOutOfSyncOnly", k == "PruneLast", k == "RespectIgnoreDifferences":
		// Plumb always applies server-side, only what changed, prunes after applying, and never
		// writes the fields its ignore rules name.
	case k == "Prune" && strings.EqualFold(v, "false"):
		a.policy.noPrune = true
	case k == "Replace" && on:
		a.policy.replace = true
	case k == "Validate" && strings.EqualFold(v, "false"):
		a.find(o, a.object, p, "Plumb always validates with a server-side dry run: fix the objects the API server refuses, and remove Validate=false")
	default:
		a.find(o, a.object, p, fmt.Sprintf("Plumb has no counterpart of sync option %q; remove it (see docs/guides/migrate-from-argocd.md)", text(o)))
	}
}

// ignoreDifferences turns spec.ignoreDifferences into ignore rules (JSON pointers only).
func (a *app) ignoreDifferences(list *yaml.Node) {
	for i, d := range items(list) {
		p := fmt.Sprintf("spec.ignoreDifferences[%d]", i)
		rule, target := mapping(), mapping()
		var paths *yaml.Node
		pairs(d, func(k, v *yaml.Node) {
			switch k.Value {
			case "group", "kind", "name", "namespace":
				if text(v) != "" {
					set(target, k.Value, from(v, text(v)))
				}
			case "jsonPointers":
				paths = deepCopy(v)
			default:
				a.find(k, a.object, p+"."+k.Value, "Plumb ignores fields by JSON pointer only (spec.ignore of a Kustomization, spec.driftDetection.ignore of a HelmRelease): write the fields as jsonPointers")
			}
		})
		if paths == nil {
			continue
		}
		set(rule, "paths", paths)
		if len(target.Content) > 0 {
			set(rule, "target", target)
		}
		a.policy.ignore = append(a.policy.ignore, rule)
	}
}

// source writes the objects of one source.
func (a *app) source(s *yaml.Node, name string) {
	repoURL := text(field(s, "repoURL"))
	if repoURL == "" {
		a.find(s, a.object, "spec.source.repoURL", "the source has no repoURL")
		return
	}
	if chart := field(s, "chart"); chart != nil {
		a.helmRelease(s, name, a.helmRepository(s, repoURL), chart, field(s, "targetRevision"), "")
		return
	}
	p := strings.Trim(path.Clean("/"+text(field(s, "path"))), "/")
	if field(s, "plugin") != nil {
		a.find(field(s, "plugin"), a.object, "spec.source.plugin", "Plumb runs no config management plugins: render the manifests in CI and commit them, or push them as an OCI artifact (plumb push artifact), and point a Kustomization at them")
		return
	}
	git := a.gitRepository(s, repoURL)
	kind := "directory"
	switch {
	case field(s, "helm") != nil:
		kind = "helm"
	case field(s, "kustomize") != nil:
		kind = "kustomize"
	case field(s, "directory") != nil:
	default:
		dir, ok := a.run.local(repoURL, p)
		switch {
		case !ok:
			a.find(s, a.object, "spec.source.path", fmt.Sprintf("%s is not the repository being migrated (pass --repo-url if it is), so whether %s holds a Helm chart is not known: it is migrated as a Kustomization; if the folder has a Chart.yaml, write a HelmRelease with chart.spec.sourceRef the GitRepository instead", repoURL, "./"+p))
		case exists(filepath.Join(dir, "Chart.yaml")):
			kind = "helm"
		}
	}
	if kind == "helm" {
		a.helmRelease(s, name, git, nil, nil, "./"+p)
		return
	}
	a.kustomization(s, name, git, "./"+p)
}

// gitRepository returns the GitRepository of a source, writing it the first time.
func (a *app) gitRepository(s *yaml.Node, repoURL string) *yaml.Node {
	rev := text(field(s, "targetRevision"))
	key := "GitRepository " + normalizeURL(repoURL) + "@" + rev
	if name, ok := a.run.sources[key]; ok {
		return ref("GitRepository", name)
	}
	base := dnsName(path.Base(strings.TrimSuffix(strings.TrimSuffix(normalizeURL(repoURL), "/"), ".git")))
	if rev != "" && rev != "HEAD" && a.run.names["GitRepository/"+base] {
		base = dnsName(base + "-" + rev)
	}
	name := a.run.unique("GitRepository", base)
	a.run.sources[key] = name
	spec := mapping()
	set(spec, "interval", str(sourceInterval))
	set(spec, "url", from(field(s, "repoURL"), gitURL(repoURL)))
	if r := gitRef(field(s, "targetRevision")); r != nil {
		set(spec, "ref", r)
	}
	a.emit("source.plumb.dev", "GitRepository", name, spec, "")
	return ref("GitRepository", name)
}

// gitURL writes an scp-like address (git@host:path), which Argo CD takes and a GitRepository
// does not, as an ssh:// URL.
func gitURL(u string) string {
	if strings.Contains(u, "://") {
		return u
	}
	if m := scpLike.FindStringSubmatch(u); m != nil {
		return "ssh://" + m[1] + m[2] + "/" + m[3]
	}
	return u
}

var (
	commitSHA   = regexp.MustCompile(`^[0-9a-f]{40}$`)
	version     = regexp.MustCompile(`^v?[0-9]+(\.[0-9]+){0,2}([-+][0-9A-Za-z.-]+)?$`)
	versionSpan = regexp.MustCompile(`[*^~<>=|]|(^|\.)[xX](\.|$)`)
)

// gitRef maps an Application's targetRevision to a GitRepository's ref: none for HEAD (the
// default branch), a commit, a tag for something that looks like a version, a semver range,
// a full ref name, or else a branch.
func gitRef(rev *yaml.Node) *yaml.Node {
	r := text(rev)
	if r == "" || r == "HEAD" {
		return nil
	}
	key := "branch"
	switch {
	case commitSHA.MatchString(r):
		key = "commit"
	case strings.HasPrefix(r, "refs/"):
		key = "name"
	case version.MatchString(r):
		key = "tag"
	case versionSpan.MatchString(r) && strings.ContainsAny(r, "0123456789"):
		key = "semver"
	}
	m := mapping()
	set(m, key, from(rev, r))
	return m
}

// helmRepository returns the HelmRepository of a chart source, writing it the first time.
func (a *app) helmRepository(s *yaml.Node, repoURL string) *yaml.Node {
	oci := strings.HasPrefix(repoURL, "oci://") || !strings.Contains(repoURL, "://")
	url := repoURL
	if oci && !strings.HasPrefix(url, "oci://") {
		url = "oci://" + url
	}
	key := "HelmRepository " + url
	if name, ok := a.run.sources[key]; ok {
		return ref("HelmRepository", name)
	}
	name := a.run.unique("HelmRepository", dnsName(path.Base(strings.TrimSuffix(url, "/"))))
	a.run.sources[key] = name
	spec := mapping()
	set(spec, "interval", str(sourceInterval))
	if oci {
		set(spec, "type", str("oci"))
	}
	set(spec, "url", from(field(s, "repoURL"), url))
	if truthy(field(field(s, "helm"), "passCredentials")) {
		set(spec, "passCredentials", boolean(true))
	}
	a.emit("source.plumb.dev", "HelmRepository", name, spec, "")
	return ref("HelmRepository", name)
}

// kustomization writes the Kustomization of a directory or kustomize source.
func (a *app) kustomization(s *yaml.Node, name string, sourceRef *yaml.Node, p string) {
	spec := mapping()
	set(spec, "interval", str(applyInterval))
	set(spec, "sourceRef", sourceRef)
	set(spec, "path", from(field(s, "path"), p))
	set(spec, "prune", boolean(a.policy.prune && !a.policy.noPrune))
	if a.targetNamespace != "" {
		set(spec, "targetNamespace", str(a.targetNamespace))
	}
	dir, local := a.run.local(text(field(s, "repoURL")), p)
	var own map[string]any
	if local {
		own = ownKustomization(dir)
	}
	if d := field(s, "directory"); d != nil || (field(s, "kustomize") == nil && own == nil) {
		a.directory(s, d, p)
	}
	a.kustomize(field(s, "kustomize"), spec, own)
	if a.policy.automated && !a.policy.selfHeal {
		set(spec, "driftPolicy", str("Warn"))
	}
	if a.policy.replace {
		set(spec, "force", boolean(true))
	}
	if a.policy.retryInterval != nil {
		set(spec, "retryInterval", from(a.policy.retryInterval, text(a.policy.retryInterval)))
	}
	if len(a.policy.ignore) > 0 {
		ignore := set(spec, "ignore", sequence())
		for _, r := range a.policy.ignore {
			ignore.Content = append(ignore.Content, deepCopy(r))
		}
	}
	if n := a.policy.createNamespace; n != nil {
		a.find(n, a.object, "spec.syncPolicy.syncOptions", "a Kustomization does not create its target namespace: add the Namespace to the source (or let another Kustomization, listed in dependsOn, apply it)")
	}
	if !a.policy.automated {
		set(spec, "suspend", boolean(true))
	}
	a.emit("apply.plumb.dev", "Kustomization", name, spec, a.note)
}

// directory checks a directory source: Plumb builds every manifest under the path, subfolders
// included, as Argo CD does with recurse: true.
func (a *app) directory(s, d *yaml.Node, p string) {
	const fp = "spec.source.directory"
	pairs(d, func(k, v *yaml.Node) {
		switch k.Value {
		case "recurse":
		case "include", "exclude":
			a.find(k, a.object, fp+"."+k.Value, "a Kustomization builds every manifest under its path: move the files to leave out to another folder, or list the ones to build in a kustomization.yaml")
		default:
			a.find(k, a.object, fp+"."+k.Value, "Plumb has no counterpart of this field (no Jsonnet): render the manifests in CI and commit them")
		}
	})
	if truthy(field(d, "recurse")) {
		return
	}
	dir, ok := a.run.local(text(field(s, "repoURL")), p)
	if ok && hasManifestsBelow(dir) {
		a.find(s, a.object, "spec.source.directory.recurse", fmt.Sprintf("Argo CD reads only the files directly in %s, but a Kustomization builds its subfolders too: move them out, or add a kustomization.yaml listing the files to build", p))
	}
}

// kustomize maps spec.source.kustomize to the Kustomization's fields.
// own is the source's kustomization, when the repository is the one migrated and has one.
func (a *app) kustomize(k, spec *yaml.Node, own map[string]any) {
	const fp = "spec.source.kustomize"
	withoutSelector := truthy(field(k, "labelWithoutSelector"))
	pairs(k, func(key, v *yaml.Node) {
		p := fp + "." + key.Value
		switch key.Value {
		case "namePrefix", "nameSuffix":
			if mine, ok := own[key.Value].(string); ok && mine != "" {
				a.find(key, a.object, p, fmt.Sprintf("Argo CD replaces the kustomization's %s %q, Plumb adds %q around it: remove the kustomization's, or set this one in the kustomization.yaml instead", key.Value, mine, text(v)))
			}
			set(spec, key.Value, from(v, text(v)))
		case "namespace":
			set(spec, "targetNamespace", from(v, text(v)))
		case "images":
			images := set(spec, "images", sequence())
			for _, i := range items(v) {
				images.Content = append(images.Content, image(i))
			}
		case "commonLabels":
			if !withoutSelector {
				a.find(key, a.object, p, "kustomize puts commonLabels in selectors too, and Plumb's commonMetadata.labels does not: they are written to spec.commonMetadata.labels; if the selectors need them, set them in the source's kustomization.yaml instead (selectors are immutable: a changed selector replaces the Deployment)")
			}
			set(child(spec, "commonMetadata"), "labels", deepCopy(v))
		case "commonAnnotations":
			a.find(key, a.object, p, "kustomize puts commonAnnotations in pod templates too, and Plumb's commonMetadata.annotations does not: they are written to spec.commonMetadata.annotations; if pods need them, set them in the source's kustomization.yaml instead")
			set(child(spec, "commonMetadata"), "annotations", deepCopy(v))
		case "components":
			set(spec, "components", deepCopy(v))
		case "ignoreMissingComponents":
			set(spec, "ignoreMissingComponents", boolean(truthy(v)))
		case "patches":
			a.patches(v, spec, p)
		case "labelWithoutSelector", "version":
			// Plumb builds with its own kustomize; labels are never put in selectors.
		default:
			a.find(key, a.object, p, "Plumb's Kustomization has no counterpart of this field: set it in the source's kustomization.yaml instead")
		}
	})
}

// patches maps kustomize patches: inline ones as they are, patch files are refused.
func (a *app) patches(list, spec *yaml.Node, fp string) {
	out := sequence()
	for i, pt := range items(list) {
		p := fmt.Sprintf("%s[%d]", fp, i)
		patch := mapping()
		pairs(pt, func(k, v *yaml.Node) {
			switch k.Value {
			case "patch":
				set(patch, "patch", deepCopy(v))
			case "target":
				target := mapping()
				pairs(v, func(k, v *yaml.Node) {
					set(target, k.Value, from(v, text(v)))
				})
				set(patch, "target", target)
			default:
				a.find(k, a.object, p+"."+k.Value, "a Kustomization's patches are inline only: copy the patch into patch, or list it in the source's kustomization.yaml")
			}
		})
		if field(patch, "patch") != nil {
			out.Content = append(out.Content, patch)
		}
	}
	if len(out.Content) > 0 {
		set(spec, "patches", out)
	}
}

// image parses one of kustomize's image overrides, written as `kustomize edit set image`
// takes them: [old=]new[:tag][@digest].
func image(n *yaml.Node) *yaml.Node {
	s := text(n)
	m := mapping()
	old, repl, renamed := strings.Cut(s, "=")
	if !renamed {
		repl = s
	}
	name, digest, _ := strings.Cut(repl, "@")
	tag := ""
	if i := strings.LastIndex(name, ":"); i > strings.LastIndex(name, "/") {
		name, tag = name[:i], name[i+1:]
	}
	if renamed {
		set(m, "name", from(n, old))
		set(m, "newName", str(name))
	} else {
		set(m, "name", from(n, name))
	}
	if tag != "" {
		set(m, "newTag", str(tag))
	}
	if digest != "" {
		set(m, "digest", str(digest))
	}
	return m
}

// helmRelease writes the HelmRelease of a Helm source: chart (and version) from a
// HelmRepository, or the chart folder chartPath of a GitRepository.
func (a *app) helmRelease(s *yaml.Node, name string, sourceRef, chart, rev *yaml.Node, chartPath string) {
	const fp = "spec.source.helm"
	h := field(s, "helm")
	spec := mapping()
	set(spec, "interval", str(applyInterval))
	releaseName := a.name
	if rn := field(h, "releaseName"); rn != nil {
		releaseName = text(rn)
	}
	// Argo CD's release name is the Application's, where Plumb's default would prefix the
	// target namespace: it is always written.
	set(spec, "releaseName", from(field(h, "releaseName"), releaseName))
	ns := a.targetNamespace
	if n := field(h, "namespace"); n != nil {
		ns = text(n)
	}
	if ns != "" {
		set(spec, "targetNamespace", str(ns))
	}
	chartSpec := mapping()
	if chart != nil {
		set(chartSpec, "chart", from(chart, text(chart)))
		if text(rev) != "" {
			set(chartSpec, "version", from(rev, text(rev)))
		}
	} else {
		set(chartSpec, "chart", from(field(s, "path"), chartPath))
	}
	set(chartSpec, "sourceRef", sourceRef)
	set(child(spec, "chart"), "spec", chartSpec)
	var values *yaml.Node
	pairs(h, func(k, v *yaml.Node) {
		p := fp + "." + k.Value
		switch k.Value {
		case "releaseName", "namespace", "passCredentials", "version", "skipTests":
		case "valueFiles":
			a.valueFiles(v, chartSpec, p)
		case "ignoreMissingValueFiles":
			set(chartSpec, "ignoreMissingValuesFiles", boolean(truthy(v)))
		case "values":
			var doc yaml.Node
			if err := yaml.Unmarshal([]byte(v.Value), &doc); err != nil || len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
				if strings.TrimSpace(v.Value) != "" {
					a.find(k, a.object, p, "the values are not a YAML map; fix them, then run the migration again")
				}
				return
			}
			values = merge(values, doc.Content[0])
		case "valuesObject":
			values = merge(values, deepCopy(v))
		case "parameters":
			values = merge(values, a.parameters(v, p))
		case "skipCrds":
			if truthy(v) {
				set(child(spec, "install"), "crds", str("Skip"))
			}
		case "skipSchemaValidation":
			if truthy(v) {
				set(child(spec, "install"), "disableSchemaValidation", boolean(true))
				set(child(spec, "upgrade"), "disableSchemaValidation", boolean(true))
			}
		default:
			a.find(k, a.object, p, "Plumb's HelmRelease has no counterpart of this field; remove it (see docs/guides/migrate-from-argocd.md)")
		}
	})
	if values != nil {
		set(spec, "values", values)
	}
	if a.policy.createNamespace != nil {
		set(child(spec, "install"), "createNamespace", boolean(true))
	}
	if l := a.policy.retryLimit; l != nil {
		if n, err := strconv.ParseInt(text(l), 10, 64); err == nil {
			set(child(child(spec, "install"), "remediation"), "retries", integer(n))
			set(child(child(spec, "upgrade"), "remediation"), "retries", integer(n))
		}
	}
	if a.policy.replace {
		set(child(spec, "upgrade"), "force", boolean(true))
	}
	drift := child(spec, "driftDetection")
	switch {
	case a.policy.selfHeal:
		set(drift, "mode", str("enabled"))
	default:
		set(drift, "mode", str("warn"))
	}
	if len(a.policy.ignore) > 0 {
		ignore := set(drift, "ignore", sequence())
		for _, r := range a.policy.ignore {
			ignore.Content = append(ignore.Content, deepCopy(r))
		}
	}
	if !a.policy.automated {
		set(spec, "suspend", boolean(true))
	}
	a.emit("helm.plumb.dev", "HelmRelease", name, spec, a.note)
}

// valueFiles maps helm.valueFiles: paths relative to the chart, as Plumb's valuesFiles are.
// Files of another source ($name/...) and URLs are refused.
func (a *app) valueFiles(list, chartSpec *yaml.Node, fp string) {
	out := sequence()
	for i, f := range items(list) {
		v := text(f)
		switch {
		case strings.HasPrefix(v, "$"):
			a.find(f, a.object, fmt.Sprintf("%s[%d]", fp, i), fmt.Sprintf("Plumb reads values files from the chart's own source only: copy %s next to the chart, or put its values in a ConfigMap and list it in spec.valuesFrom", v))
		case strings.Contains(v, "://"):
			a.find(f, a.object, fmt.Sprintf("%s[%d]", fp, i), "Plumb does not fetch values files by URL: copy the file next to the chart, or put its values in a ConfigMap and list it in spec.valuesFrom")
		default:
			out.Content = append(out.Content, from(f, v))
		}
	}
	if len(out.Content) > 0 {
		set(chartSpec, "valuesFiles", out)
	}
}

// parameters turns helm.parameters (Helm's --set and --set-string) into values.
func (a *app) parameters(list *yaml.Node, fp string) *yaml.Node {
	vals := map[string]any{}
	for i, p := range items(list) {
		name, value := text(field(p, "name")), text(field(p, "value"))
		// Argo CD escapes commas, so that a value is one value.
		set := name + "=" + strings.ReplaceAll(value, ",", `\,`)
		var err error
		if truthy(field(p, "forceString")) {
			err = strvals.ParseIntoString(set, vals)
		} else {
			err = strvals.ParseInto(set, vals)
		}
		if err != nil {
			a.find(p, a.object, fmt.Sprintf("%s[%d]", fp, i), fmt.Sprintf("Helm does not take parameter %q: %v", name, err))
		}
	}
	var n yaml.Node
	b, err := yaml.Marshal(vals)
	if err != nil || yaml.Unmarshal(b, &n) != nil || len(n.Content) == 0 {
		return mapping()
	}
	return n.Content[0]
}

// emit adds one Plumb object.
func (a *app) emit(group, kind, name string, spec *yaml.Node, note string) {
	if kind == "Kustomization" || kind == "HelmRelease" {
		name = a.run.unique(kind, name)
	}
	o := mapping()
	o.HeadComment = note
	set(o, "apiVersion", str(group+"/"+Version))
	set(o, "kind", str(kind))
	meta := set(o, "metadata", mapping())
	set(meta, "name", str(name))
	set(meta, "namespace", str(a.run.opts.Namespace))
	set(o, "spec", spec)
	a.objects = append(a.objects, o)
}

// ref is a sourceRef.
func ref(kind, name string) *yaml.Node {
	m := mapping()
	set(m, "kind", str(kind))
	set(m, "name", str(name))
	return m
}

// exists says whether a file exists.
func exists(p string) bool {
	info, err := os.Stat(p)
	return err == nil && !info.IsDir()
}

// hasManifestsBelow says whether a subfolder of dir holds YAML or JSON files.
func hasManifestsBelow(dir string) bool {
	found := false
	_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || found {
			return filepath.SkipAll
		}
		if d.IsDir() || filepath.Dir(p) == dir {
			return nil
		}
		switch filepath.Ext(p) {
		case ".yaml", ".yml", ".json":
			found = true
		}
		return nil
	})
	return found
}

// ownKustomization reads the kustomization file of a folder: nil when it has none.
func ownKustomization(dir string) map[string]any {
	for _, name := range []string{"kustomization.yaml", "kustomization.yml", "Kustomization"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			continue
		}
		k := map[string]any{}
		_ = sigsyaml.Unmarshal(b, &k)
		return k
	}
	return nil
}
