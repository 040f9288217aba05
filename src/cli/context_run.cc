#include "cli/context_run.h"

#include <fmt/format.h>

#include <algorithm>
#include <cstdio>

#include "core/error.h"
#include "model/tokenizer.h"

namespace ls::cli {

void add_context_options(CLI::App& app, ContextOptions& o) {
  app.add_option("--context-parallel", o.mode,
                 "split the prefill over the ranks of `mpirun -np R`: ring (exact) or star (Star Attention)");
  app.add_option("--cp-anchor", o.anchor, "star: anchor block in tokens (default: the block size, as the paper)");
}

std::unique_ptr<ContextRun> ContextRun::make(const ContextOptions& options) {
  if (options.mode.empty()) {
    LS_CHECK(options.anchor == 0, "--cp-anchor needs --context-parallel star");
    return nullptr;
  }
  const ContextMode mode = parse_context_mode(options.mode);
  auto run = std::make_unique<ContextRun>();
  run->comm_ = mpi_communicator();
  run->parallel_ = std::make_unique<ContextParallel>(*run->comm_, mode, options.anchor);
  run->parallel_->set_block_alignment(ContextParallel::kBlockAlignment);  // whole pages for decode selectors
  return run;
}

void ContextRun::guard(const std::function<void()>& body) {
  try {
    body();
  } catch (const CollectiveError&) {
    throw;  // every rank has it
  } catch (const Error& e) {
    if (!ready_) {
      ready_ = true;
      comm_->agree(e.what());  // throws on every rank
    }
    if (comm_->size() == 1) throw;
    // The other ranks are in the middle of an exchange with this one: end the job now.
    std::fprintf(stderr, "longsparse: error: rank %d: %s\n", comm_->rank(), e.what());
    std::fflush(stderr);
    comm_->abort(1);
  }
}

void ContextRun::ready() {
  ready_ = true;
  comm_->agree("");
}

std::vector<ContextStats> ContextRun::gather_stats() {
  const ContextStats mine = parallel_->stats();
  std::vector<ContextStats> all(comm_->size());
  comm_->allgather(&mine, sizeof mine, all.data());
  return all;
}

nlohmann::json ContextRun::json(const std::vector<ContextStats>& stats) const {
  const ContextLayout& l = parallel_->layout();
  nlohmann::json ranks = nlohmann::json::array();
  for (std::size_t r = 0; r < stats.size(); ++r) {
    const ContextStats& s = stats[r];
    ranks.push_back({{"rank", r}, {"first", l.begin[r]}, {"tokens", l.block(int(r))}, {"phase1_ms", s.phase1_ms},
                     {"phase2_ms", s.phase2_ms}, {"wait_ms", s.wait_ms}, {"remote_attention_ms", s.remote_ms},
                     {"remote_pairs", s.remote_pairs}, {"bytes_sent", s.bytes_sent}});
  }
  return {{"mode", context_mode_name(l.mode)},
          {"ranks", l.ranks},
          {"transport", comm_->describe()},
          {"context_tokens", l.context},
          {"query_tokens", l.query},
          {"anchor", l.anchor},
          {"phase1_density", l.density()},
          {"per_rank", ranks}};
}

std::string ContextRun::summary(const std::vector<ContextStats>& stats) const {
  const ContextLayout& l = parallel_->layout();
  std::string s = fmt::format("context parallel: {} ({})\n", l.describe(), comm_->describe());
  for (std::size_t r = 0; r < stats.size(); ++r) {
    const ContextStats& c = stats[r];
    s += fmt::format("  rank {}: positions {}..{}, phase 1 {:.1f} ms{}, waiting {:.1f} ms, remote attention "
                     "{:.1f} ms over {} block pairs, sent {:.2f} MB\n",
                     r, l.begin[r], l.begin[r + 1] - 1, c.phase1_ms,
                     c.phase2_ms > 0 ? fmt::format(", phase 2 {:.1f} ms", c.phase2_ms) : std::string(), c.wait_ms,
                     c.remote_ms, c.remote_pairs, c.bytes_sent / 1e6);
  }
  s.pop_back();
  return s;
}

std::size_t last_line_at(const std::string& prompt, const std::string& user_text) {
  const std::size_t newline = user_text.rfind('\n');
  const std::size_t at = prompt.rfind(user_text);
  if (newline == std::string::npos || at == std::string::npos) return std::string::npos;
  return at + newline + 1;
}

std::int64_t star_query_tokens(const Tokenizer& tokenizer, const std::string& prompt, std::size_t query_at,
                               const std::vector<std::int32_t>& encoded) {
  if (query_at == std::string::npos || query_at >= prompt.size()) return 0;
  const std::vector<std::int32_t> context = tokenizer.encode(prompt.substr(0, query_at), true);
  const auto mismatch = std::mismatch(context.begin(), context.end(), encoded.begin(), encoded.end());
  return std::int64_t(encoded.end() - mismatch.second);
}

}  // namespace ls::cli
