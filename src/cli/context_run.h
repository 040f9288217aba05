// The CLI side of context parallelism (model/context_parallel.h): the flags, the MPI
// communicator of a command, errors that reach every rank, the split of a prompt into Star
// Attention's context and query, and the per-rank figures for summaries.
#pragma once

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/comm.h"
#include "model/context_parallel.h"

namespace ls {
class Tokenizer;
}

namespace ls::cli {

struct ContextOptions {
  std::string mode;         // "" (one process), "ring" or "star"
  std::int64_t anchor = 0;  // star's anchor block; 0: the block size
};
// Declares --context-parallel and --cp-anchor on `app`.
void add_context_options(CLI::App& app, ContextOptions& o);

class ContextRun {
 public:
  // nullptr without --context-parallel. Starts MPI (the ranks of mpirun; one rank when the
  // command was started alone).
  static std::unique_ptr<ContextRun> make(const ContextOptions& options);

  Communicator& comm() { return *comm_; }
  ContextParallel& parallel() { return *parallel_; }
  bool root() const { return comm_->rank() == 0; }  // prints the command's output

  // Runs a command's body. An error a rank meets before it calls ready() (a file it cannot
  // read, a bad flag) becomes the same error on every rank; ready() is where the ranks meet
  // after their set-up.
  void guard(const std::function<void()>& body);
  void ready();

  // Every rank's figures, gathered (call on every rank).
  std::vector<ContextStats> gather_stats();
  // {"mode", "ranks", "transport", "blocks", "anchor", "query", "phase1_density", "ranks_detail": [...]}.
  nlohmann::json json(const std::vector<ContextStats>& stats) const;
  // Lines for a summary on stderr.
  std::string summary(const std::vector<ContextStats>& stats) const;

 private:
  std::unique_ptr<Communicator> comm_;
  std::unique_ptr<ContextParallel> parallel_;
  bool ready_ = false;
};

// Star Attention's query for a prompt: its tokens from byte `query_at` of the prompt text on
// (where the user text's last line, the question of a task, starts; the chat template's
// closing tokens and any answer prefix come with it). `encoded` is the prompt's tokens before
// any truncation (which keeps the end, so the query stays the prompt's last tokens). 0 when
// query_at is npos.
std::int64_t star_query_tokens(const Tokenizer& tokenizer, const std::string& prompt, std::size_t query_at,
                               const std::vector<std::int32_t>& encoded);
// Where the last line of `user_text` starts in `prompt` (the template around it), or npos.
std::size_t last_line_at(const std::string& prompt, const std::string& user_text);

}  // namespace ls::cli
