// Package wordfreq counts words in UTF-8 text: 统计词频 (CJK runes count one word each) 📊.
package wordfreq

import (
	"sort"
	"strings"
	"unicode"
)

// Entry is one word with its count.
type Entry struct {
	Word  string
	Count int
}

func isCJK(r rune) bool {
	return unicode.Is(unicode.Han, r) || unicode.Is(unicode.Hiragana, r) || unicode.Is(unicode.Katakana, r)
}

// Count returns the words of text with their counts, most frequent first.
func Count(text string) []Entry {
	counts := make(map[string]int)
	var word strings.Builder
	flush := func() {
		if word.Len() > 0 {
			counts[strings.ToLower(word.String())]++
			word.Reset()
		}
	}
	for _, r := range text {
		switch {
		case isCJK(r):
			flush()
			counts[string(r)]++
		case unicode.IsLetter(r) || unicode.IsDigit(r):
			word.WriteRune(r)
		default:
			flush()
		}
	}
	flush()
	entries := make([]Entry, 0, len(counts))
	for w, c := range counts {
		entries = append(entries, Entry{w, c})
	}
	sort.Slice(entries, func(i, j int) bool {
		if entries[i].Count != entries[j].Count {
			return entries[i].Count > entries[j].Count
		}
		return entries[i].Word < entries[j].Word
	})
	return entries
}
