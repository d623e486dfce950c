package migrate

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"text/template"

	"github.com/Masterminds/sprig/v3"
	"sigs.k8s.io/kustomize/kyaml/yaml"
	sigsyaml "sigs.k8s.io/yaml"
)

// params are the parameters of one element of a generator, nested as goTemplate sees them.
type params map[string]any

// applicationSet expands an ApplicationSet's list and git generators over its template and
// migrates each Application it would make.
func (c *converter) applicationSet(doc *yaml.Node) {
	name := text(field(field(doc, "metadata"), "name"))
	object := "ApplicationSet/" + name
	spec := field(doc, "spec")
	goTemplate := false
	var options []string
	var sets []params
	var tmpl *yaml.Node
	pairs(spec, func(k, v *yaml.Node) {
		p := "spec." + k.Value
		switch k.Value {
		case "goTemplate":
			goTemplate = truthy(v)
		case "goTemplateOptions":
			for _, o := range items(v) {
				options = append(options, text(o))
			}
		case "template":
			tmpl = v
		case "generators":
			for i, g := range items(v) {
				sets = append(sets, c.generator(object, fmt.Sprintf("%s[%d]", p, i), g)...)
			}
		case "syncPolicy":
			// How the ApplicationSet controller updates its Applications: Plumb has none in between.
		default:
			c.find(k, object, p, "Plumb has no counterpart of this field; remove it (see docs/guides/migrate-from-argocd.md)")
		}
	})
	if tmpl == nil {
		c.find(spec, object, "spec.template", "the ApplicationSet has no template")
		return
	}
	for _, ps := range sets {
		app := mapping()
		set(app, "apiVersion", str(argoGroup+"/v1alpha1"))
		set(app, "kind", str("Application"))
		rendered, err := render(deepCopy(tmpl), ps, goTemplate, options)
		if err != nil {
			c.find(tmpl, object, "spec.template", fmt.Sprintf("the template does not render: %v", err))
			continue
		}
		app.Line = tmpl.Line
		set(app, "metadata", field(rendered, "metadata"))
		set(app, "spec", field(rendered, "spec"))
		c.application(app)
	}
	c.migrated = true
}

// generator returns the parameter sets of one generator: list, or git of the repository being
// migrated.
func (c *converter) generator(object, p string, g *yaml.Node) []params {
	var sets []params
	pairs(g, func(k, v *yaml.Node) {
		gp := p + "." + k.Value
		switch k.Value {
		case "list":
			if field(v, "elementsYaml") != nil || field(v, "template") != nil {
				c.find(k, object, gp, "only the elements of a list generator are migrated: write them out as elements, and the template in spec.template")
			}
			for _, e := range items(field(v, "elements")) {
				var ps params
				if err := decodeNode(e, &ps); err != nil {
					c.find(e, object, gp+".elements", fmt.Sprintf("the element is not a map: %v", err))
					continue
				}
				sets = append(sets, ps)
			}
		case "git":
			sets = append(sets, c.gitGenerator(object, gp, v)...)
		default:
			c.find(k, object, gp, fmt.Sprintf("Plumb cannot expand a %s generator without the cluster or service it asks: write one Application (or one Kustomization) per element by hand, or as a list generator, and run the migration again", k.Value))
		}
	})
	return sets
}

// gitGenerator reads the folders or files of the repository being migrated.
func (c *converter) gitGenerator(object, p string, g *yaml.Node) []params {
	repoURL := text(field(g, "repoURL"))
	root, ok := c.run.local(repoURL, "/")
	if !ok {
		c.find(g, object, p+".repoURL", fmt.Sprintf("%s is not the repository being migrated (pass --repo-url if it is): migrate that repository's files by hand, or migrate it with a list generator", repoURL))
		return nil
	}
	var values params
	_ = decodeNode(field(g, "values"), &values)
	var sets []params
	if dirs := field(g, "directories"); dirs != nil {
		var include, exclude []string
		for _, d := range dirs.Content {
			if truthy(field(d, "exclude")) {
				exclude = append(exclude, text(field(d, "path")))
			} else {
				include = append(include, text(field(d, "path")))
			}
		}
		for _, rel := range walkRepo(root, true) {
			if matchAny(include, rel) && !matchAny(exclude, rel) {
				sets = append(sets, withValues(pathParams(rel, ""), values))
			}
		}
	}
	for _, f := range items(field(g, "files")) {
		pattern := text(field(f, "path"))
		for _, rel := range walkRepo(root, false) {
			if ok, _ := path.Match(pattern, rel); !ok || truthy(field(f, "exclude")) {
				continue
			}
			b, err := os.ReadFile(filepath.Join(root, filepath.FromSlash(rel)))
			if err != nil {
				c.find(f, object, p+".files", fmt.Sprintf("%s: %v", rel, err))
				continue
			}
			var content any
			if err := sigsyaml.Unmarshal(b, &content); err != nil {
				c.find(f, object, p+".files", fmt.Sprintf("%s is not YAML or JSON: %v", rel, err))
				continue
			}
			items, isList := content.([]any)
			if !isList {
				items = []any{content}
			}
			for _, item := range items {
				ps, _ := item.(map[string]any)
				all := params{}
				for k, v := range ps {
					all[k] = v
				}
				for k, v := range pathParams(path.Dir(rel), path.Base(rel)) {
					all[k] = v
				}
				sets = append(sets, withValues(all, values))
			}
		}
	}
	return sets
}

// pathParams are Argo CD's path parameters of a folder (and a file in it).
func pathParams(dir, file string) params {
	segments := strings.Split(dir, "/")
	p := map[string]any{
		"path":               dir,
		"basename":           path.Base(dir),
		"basenameNormalized": normalized(path.Base(dir)),
		"segments":           toAny(segments),
	}
	if file != "" {
		p["filename"], p["filenameNormalized"] = file, normalized(file)
	}
	return params{"path": p}
}

var notNormal = regexp.MustCompile(`[^a-zA-Z0-9.-]`)

// normalized is Argo CD's basenameNormalized: characters a name cannot have become dashes.
func normalized(s string) string { return notNormal.ReplaceAllString(s, "-") }

// withValues adds a git generator's values.
func withValues(ps, values params) params {
	if len(values) > 0 {
		ps["values"] = map[string]any(values)
	}
	return ps
}

// walkRepo lists the folders (dirs) or files of root, slash-separated and sorted, without .git.
func walkRepo(root string, dirs bool) []string {
	var out []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.IsDir() && d.Name() == ".git" {
			return filepath.SkipDir
		}
		rel, err := filepath.Rel(root, p)
		if err != nil || rel == "." || d.IsDir() != dirs {
			return nil
		}
		out = append(out, filepath.ToSlash(rel))
		return nil
	})
	sort.Strings(out)
	return out
}

// matchAny says whether a path matches one of the patterns.
func matchAny(patterns []string, p string) bool {
	for _, pat := range patterns {
		if ok, _ := path.Match(pat, p); ok {
			return true
		}
	}
	return false
}

// render renders every scalar of a template node (keys too) with the parameters.
func render(n *yaml.Node, ps params, goTemplate bool, options []string) (*yaml.Node, error) {
	var flat map[string]string
	if !goTemplate {
		flat = flatten(ps)
	}
	var walk func(n *yaml.Node) error
	walk = func(n *yaml.Node) error {
		if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "{{") {
			v, err := renderString(n.Value, ps, flat, goTemplate, options)
			if err != nil {
				return fmt.Errorf("line %d: %w", n.Line, err)
			}
			n.Value = v
			if n.Tag != "!!str" && n.Tag != "" {
				n.Tag = ""
			}
			n.Style = 0
		}
		for _, c := range n.Content {
			if err := walk(c); err != nil {
				return err
			}
		}
		return nil
	}
	return n, walk(n)
}

var fastTemplate = regexp.MustCompile(`\{\{\s*([^{}]*?)\s*\}\}`)

// renderString renders one string: with Go templates (and sprig's functions, as Argo CD), or
// with Argo CD's plain {{param}} replacement, which leaves unknown parameters as written.
func renderString(s string, ps params, flat map[string]string, goTemplate bool, options []string) (string, error) {
	if !goTemplate {
		return fastTemplate.ReplaceAllStringFunc(s, func(m string) string {
			if v, ok := flat[fastTemplate.FindStringSubmatch(m)[1]]; ok {
				return v
			}
			return m
		}), nil
	}
	funcs := sprig.TxtFuncMap()
	delete(funcs, "env")
	delete(funcs, "expandenv")
	t, err := template.New("").Funcs(funcs).Option(options...).Parse(s)
	if err != nil {
		return "", err
	}
	var buf bytes.Buffer
	if err := t.Execute(&buf, map[string]any(ps)); err != nil {
		return "", err
	}
	return buf.String(), nil
}

// flatten turns nested parameters into Argo CD's flat names: a.b for maps, path[0] for the
// path's segments, and path for the path itself.
func flatten(ps params) map[string]string {
	out := map[string]string{}
	var walk func(prefix string, v any)
	walk = func(prefix string, v any) {
		switch t := v.(type) {
		case map[string]any:
			for k, v := range t {
				walk(prefix+"."+k, v)
			}
		case params:
			walk(prefix, map[string]any(t))
		default:
			out[strings.TrimPrefix(prefix, ".")] = fmt.Sprint(v)
		}
	}
	for k, v := range ps {
		if k == "path" {
			if p, ok := v.(map[string]any); ok {
				out["path"] = fmt.Sprint(p["path"])
				for _, sub := range []string{"basename", "basenameNormalized", "filename", "filenameNormalized"} {
					if s, ok := p[sub]; ok {
						out["path."+sub] = fmt.Sprint(s)
					}
				}
				if segs, ok := p["segments"].([]any); ok {
					for i, s := range segs {
						out[fmt.Sprintf("path[%d]", i)] = fmt.Sprint(s)
					}
				}
				continue
			}
		}
		walk(k, v)
	}
	return out
}

// decodeNode decodes a YAML node into a parameter map.
func decodeNode(n *yaml.Node, ps *params) error {
	if n == nil {
		return nil
	}
	b, err := yaml.Marshal(n)
	if err != nil {
		return err
	}
	return sigsyaml.Unmarshal(b, ps)
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
