// Loading word lists and haystack prose from Debian packages, with a text cache.
#include "eval/text_sources.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <set>
#include <sstream>
#include <unordered_set>

#include <unistd.h>

#include "core/error.h"

namespace ls::eval {

namespace fs = std::filesystem;

std::string cache_dir() {
  if (const char* dir = std::getenv("LONGSPARSE_CACHE"); dir && *dir) return dir;
  const char* home = std::getenv("HOME");
  return std::string(home && *home ? home : "/tmp") + "/.cache/longsparse";
}

namespace {

bool is_plain_word(const std::string& w) {
  if (w.size() < 3 || w.size() > 12) return false;
  return std::all_of(w.begin(), w.end(), [](char c) { return c >= 'a' && c <= 'z'; });
}

std::vector<std::string> wordnet_lemmas(const std::string& path, const std::unordered_set<std::string>& dict) {
  std::ifstream in(path);
  LS_CHECK(in, "cannot read '{}': install the Debian package wordnet-base (scripts/setup-deps)", path);
  std::set<std::string> words;
  std::string line;
  while (std::getline(in, line)) {
    if (line.empty() || line[0] == ' ') continue;  // licence header lines start with spaces
    std::string lemma = line.substr(0, line.find(' '));
    if (is_plain_word(lemma) && dict.count(lemma)) words.insert(lemma);
  }
  return {words.begin(), words.end()};
}

std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  LS_CHECK(in, "cannot read '{}'", path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

// Converts the janeaustenr data to text once; R comes with the package as its dependency.
std::string austen_text() {
  const std::string dir = cache_dir() + "/text";
  const std::string path = dir + "/austen.txt";
  if (fs::exists(path) && fs::file_size(path) > 1000000) return read_file(path);
  LS_CHECK(fs::exists("/usr/lib/R/site-library/janeaustenr"),
           "the essay haystack needs the Debian package r-cran-janeaustenr (scripts/setup-deps), "
           "or set LONGSPARSE_HAYSTACK to a text file");
  fs::create_directories(dir);
  const std::string tmp = path + ".tmp" + std::to_string(::getpid());
  const std::string command =
      "Rscript --vanilla -e 'library(janeaustenr); writeLines(c(sensesensibility, prideprejudice, "
      "mansfieldpark, emma, northangerabbey, persuasion), \"" + tmp + "\")' >/dev/null 2>&1";
  int status = std::system(command.c_str());
  LS_CHECK(status == 0 && fs::exists(tmp), "converting the Jane Austen novels with Rscript failed (status {}); "
           "install r-cran-janeaustenr or set LONGSPARSE_HAYSTACK to a text file", status);
  fs::rename(tmp, path);  // atomic: concurrent first runs never see half a file
  return read_file(path);
}

bool is_heading(const std::string& line) {
  bool has_upper = false;
  for (char c : line) {
    if (c >= 'a' && c <= 'z') return false;
    has_upper |= c >= 'A' && c <= 'Z';
  }
  return has_upper;
}

}  // namespace

const WordLists& word_lists() {
  static std::once_flag once;
  static WordLists lists;
  std::call_once(once, [] {
    std::unordered_set<std::string> dict;
    std::ifstream in("/usr/share/dict/words");
    LS_CHECK(in, "cannot read /usr/share/dict/words: install the Debian package wamerican (scripts/setup-deps)");
    for (std::string w; std::getline(in, w);) dict.insert(w);
    lists.nouns = wordnet_lemmas("/usr/share/wordnet/index.noun", dict);
    lists.adjectives = wordnet_lemmas("/usr/share/wordnet/index.adj", dict);
    lists.verbs = wordnet_lemmas("/usr/share/wordnet/index.verb", dict);
  });
  return lists;
}

std::vector<std::string> split_sentences(const std::string& text) {
  // Paragraph text without headings, whitespace collapsed to single spaces.
  std::string flat;
  std::istringstream lines(text);
  for (std::string line; std::getline(lines, line);) {
    if (is_heading(line)) continue;
    for (char c : line) {
      bool space = c == ' ' || c == '\t' || c == '\r';
      if (space) {
        if (!flat.empty() && flat.back() != ' ') flat.push_back(' ');
      } else {
        flat.push_back(c);
      }
    }
    if (!flat.empty() && flat.back() != ' ') flat.push_back(' ');
  }
  static const std::set<std::string> titles{"Mr", "Mrs", "Dr", "St", "Messrs", "Col", "Capt", "Gen", "Lt", "Sir", "Rev"};
  std::vector<std::string> sentences;
  std::size_t start = 0;
  for (std::size_t i = 0; i < flat.size(); ++i) {
    char c = flat[i];
    if (c != '.' && c != '!' && c != '?') continue;
    std::size_t end = i + 1;
    while (end < flat.size() && (flat[end] == '"' || flat[end] == '\'' || flat[end] == ')' || flat[end] == '_')) ++end;
    if (end >= flat.size() || flat[end] != ' ') continue;
    if (c == '.') {
      std::size_t word_start = flat.rfind(' ', i);
      word_start = word_start == std::string::npos ? 0 : word_start + 1;
      if (titles.count(flat.substr(word_start, i - word_start))) continue;
    }
    std::size_t next = end + 1;
    if (next < flat.size() && flat[next] >= 'a' && flat[next] <= 'z') continue;  // "?" inside a sentence
    std::string sentence = flat.substr(start, end - start);
    if (sentence.find_first_not_of(' ') != std::string::npos) sentences.push_back(sentence);
    start = next;
    i = end;
  }
  if (start < flat.size()) {
    std::string rest = flat.substr(start);
    while (!rest.empty() && rest.back() == ' ') rest.pop_back();
    if (!rest.empty()) sentences.push_back(rest);
  }
  return sentences;
}

const std::vector<std::string>& essay_sentences() {
  static std::once_flag once;
  static std::vector<std::string> sentences;
  std::call_once(once, [] {
    const char* custom = std::getenv("LONGSPARSE_HAYSTACK");
    std::string text = custom && *custom ? read_file(custom) : austen_text();
    sentences = split_sentences(text);
    LS_CHECK(sentences.size() >= 100, "the haystack text has only {} sentences; need at least 100",
             sentences.size());
  });
  return sentences;
}

}  // namespace ls::eval
