// Offline text for task generation, all from Debian packages (docs/eval.md, "Substitutions"):
//   - word lists: WordNet 3.0 lemmas (wordnet-base) restricted to words also in
//     /usr/share/dict/words (wamerican), standing in for the wonderwords lists RULER uses;
//   - essay haystack: Jane Austen's six novels (r-cran-janeaustenr), standing in for Paul
//     Graham's essays. The package stores them as R data; the first use converts them once
//     with Rscript (installed with the package) into a plain-text cache, later runs read the cache.
// $LONGSPARSE_HAYSTACK may name any UTF-8 text file to use instead of the novels.
#pragma once

#include <string>
#include <vector>

namespace ls::eval {

struct WordLists {
  std::vector<std::string> nouns, adjectives, verbs;  // sorted, unique, lowercase a–z only
};

// Loaded once per process; fails with a message naming the missing package.
const WordLists& word_lists();

// The haystack prose split into sentences (no empty ones); loaded once per process.
const std::vector<std::string>& essay_sentences();

// Splits prose into sentences: whitespace collapsed, headings (lines in capitals) dropped,
// splits after . ! ? (and closing quotes) unless the word is a title such as "Mr.".
std::vector<std::string> split_sentences(const std::string& text);

// ~/.cache/longsparse (or $LONGSPARSE_CACHE).
std::string cache_dir();

}  // namespace ls::eval
