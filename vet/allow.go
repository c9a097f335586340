package vet

import (
	"go/ast"
	"strings"

	"golang.org/x/tools/go/analysis"
)

// allowDirective starts a line comment that suppresses the findings on its
// own line or on the line after it.
const allowDirective = "//metronome:allow"

// allowComment is one //metronome:allow comment of a file.
type allowComment struct {
	comment *ast.Comment
	file    string
	line    int
	reason  string
	used    bool
}

// covers reports whether the comment suppresses a finding on line of file:
// the comment is on that line (after the code) or on the line before it.
func (allow *allowComment) covers(file string, line int) bool {
	return allow.file == file && (allow.line == line || allow.line == line-1)
}

// applyAllows drops the findings that a //metronome:allow comment with a
// reason covers, and adds a finding for every allow comment without a reason
// and for every one that covers no finding. The result is sorted.
func applyAllows(pass *analysis.Pass, findings []analysis.Diagnostic) []analysis.Diagnostic {
	allows := collectAllows(pass)
	var kept []analysis.Diagnostic
	for _, finding := range findings {
		position := pass.Fset.Position(finding.Pos)
		suppressed := false
		for _, allow := range allows {
			if allow.reason != "" && allow.covers(position.Filename, position.Line) {
				allow.used = true
				suppressed = true
			}
		}
		if !suppressed {
			kept = append(kept, finding)
		}
	}
	for _, allow := range allows {
		switch {
		case allow.reason == "":
			kept = append(kept, analysis.Diagnostic{
				Pos: allow.comment.Pos(), End: allow.comment.End(), Category: categoryAllow,
				Message: "//metronome:allow needs a reason: say why the construct is deterministic here, e.g. //metronome:allow summing is order-independent",
			})
		case !allow.used:
			kept = append(kept, analysis.Diagnostic{
				Pos: allow.comment.Pos(), End: allow.comment.End(), Category: categoryAllow,
				Message: "//metronome:allow suppresses nothing: no finding on this line or the next; remove it",
			})
		}
	}
	sortDiagnostics(kept)
	return kept
}

// collectAllows finds the //metronome:allow comments of the pass's files.
func collectAllows(pass *analysis.Pass) []*allowComment {
	var allows []*allowComment
	for _, file := range pass.Files {
		for _, group := range file.Comments {
			for _, comment := range group.List {
				rest, found := strings.CutPrefix(comment.Text, allowDirective)
				if !found || (rest != "" && rest[0] != ' ' && rest[0] != '\t') {
					continue
				}
				position := pass.Fset.Position(comment.Pos())
				allows = append(allows, &allowComment{
					comment: comment,
					file:    position.Filename,
					line:    position.Line,
					reason:  reasonOf(rest),
				})
			}
		}
	}
	return allows
}

// reasonOf is the reason of an allow comment: the text after the directive,
// up to a trailing comment ("//metronome:allow reason // more").
func reasonOf(rest string) string {
	reason, _, _ := strings.Cut(rest, "//")
	return strings.TrimSpace(reason)
}
