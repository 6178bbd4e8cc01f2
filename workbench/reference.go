package workbench

import (
	"fmt"
	"strings"
)

// Reference renders the command reference in Markdown from the command declarations themselves, so
// docs/language.md cannot drift from `help` (a test compares them).
func Reference() string {
	var b strings.Builder
	for _, g := range groups {
		fmt.Fprintf(&b, "### %s commands\n\n", g)
		for _, n := range commandOrder {
			c := registry[n]
			if c.group != g {
				continue
			}
			sp := c.spec
			fmt.Fprintf(&b, "#### `%s`\n\n%s.", sp.Name, capitalize(sp.Summary))
			if sp.Doc != "" {
				fmt.Fprintf(&b, " %s", sp.Doc)
			}
			fmt.Fprintf(&b, "\n\n```\n%s\n```\n\n", sp.Usage())
			if len(sp.Params) > 0 {
				b.WriteString("| parameter | kind | default | what it is |\n|---|---|---|---|\n")
				for _, p := range sp.Params {
					name := "`" + p.Name + "`"
					if p.Positional {
						name += " (positional)"
					}
					kind := p.Kind.String()
					if len(p.Allowed) > 0 {
						kind = strings.Join(p.Allowed, " | ")
					}
					if p.List {
						kind += ", list"
					}
					def := p.Default
					if p.Required {
						def = "required"
					}
					fmt.Fprintf(&b, "| %s | %s | %s | %s |\n", name, cell(kind), cell(def), cell(p.Doc))
				}
				b.WriteString("\n")
			}
			fmt.Fprintf(&b, "Example: `%s`\n\n", sp.Example)
		}
	}
	return b.String()
}

func capitalize(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// cell escapes a Markdown table cell: a bare '|' (as in the kind on|off) would start a new column.
func cell(s string) string { return strings.ReplaceAll(s, "|", `\|`) }
