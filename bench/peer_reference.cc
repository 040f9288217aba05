// peer_reference: forward-pass reference outputs from llama.cpp, for tests/data/*_reference.json.
//
// This is a peer tool, not part of the longsparse build (bench/CMakeLists.txt only picks up
// *_bench.cc). It is compiled by hand against a llama.cpp build kept outside the repository
// (see docs/peers.md):
//
//   g++ -O2 -std=c++17 bench/peer_reference.cc -I<vendor/llama.cpp>/include
//       -I<vendor/llama.cpp>/ggml/include -L/tmp/peers/llama.cpp-build/bin
//       -Wl,-rpath,/tmp/peers/llama.cpp-build/bin -lllama -lggml -lggml-base -o /tmp/peers/bin/peer_reference
//   (one command line)
//
// usage: peer_reference -m MODEL.gguf -f PROMPT.txt [--fa 0|1] [-t THREADS] [-n N_GEN]
//                       [--bos auto|0|1] [--kv f16|f32] [--force IDS.txt] [--logits-out FILE]
//
// What it does, for one raw-text prompt (no chat template):
//   - tokenizes the file's bytes with llama_tokenize(add_special = BOS setting, parse_special = true);
//     "--bos auto" (the default) adds BOS exactly when the model's add_bos_token asks for it;
//   - creates a context with default parameters except: n_ctx = prompt + N_GEN rounded up to a
//     multiple of 256, n_batch = n_ubatch = max(prompt, 64) so the whole prompt is one
//     llama_decode call, f16 K/V cache (--kv f32: f32, as a higher-precision anchor), flash
//     attention off or on as asked, THREADS threads,
//     n_outputs_max = 1 (only the compute-buffer reservation changes: one output row, not n_ubatch);
//   - reads the raw logits at the last prompt position (llama_get_logits_ith(ctx, -1)): top-5;
//   - decodes N_GEN tokens (default 32) by argmax of the raw logits, one llama_decode per token,
//     not stopping at end-of-generation tokens, recording top1 - top2 at each step.
//     With --force, the token fed back at step i is the i-th id of IDS.txt (whitespace-separated)
//     instead of the argmax (teacher forcing); the argmax is still what is recorded.
//   - --logits-out writes the N_GEN logit rows (row 0 = last prompt position, row i = after feeding
//     the i-th continuation token), float32 little-endian, n_vocab floats per row.
// It prints one JSON object on stdout with the fields of a *_reference.json prompt entry
// (prompt_tokens, prompt_ids, top5, greedy, greedy_text, eog_at, margins) plus the settings used
// and timings.

#include "llama.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace {

void die(const char *msg) {
    std::fprintf(stderr, "peer_reference: %s\n", msg);
    std::exit(1);
}

std::string read_file(const std::string &path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) die(("cannot read " + path).c_str());
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

std::string json_string(const std::string &s) {
    std::string out = "\"";
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);  // UTF-8 passes through; the reader validates it
                }
        }
    }
    return out + "\"";
}

std::string piece(const llama_vocab *vocab, llama_token t) {
    std::vector<char> buf(64);
    int n = llama_token_to_piece(vocab, t, buf.data(), static_cast<int32_t>(buf.size()), 0, false);
    if (n < 0) {
        buf.resize(-n);
        n = llama_token_to_piece(vocab, t, buf.data(), static_cast<int32_t>(buf.size()), 0, false);
    }
    return std::string(buf.data(), std::max(n, 0));
}

struct Top {
    std::vector<std::pair<llama_token, float>> best;  // descending by logit
};

Top top_k(const float *logits, int n_vocab, int k) {
    Top t;
    for (int i = 0; i < n_vocab; ++i) {
        float v = logits[i];
        if (static_cast<int>(t.best.size()) < k || v > t.best.back().second) {
            auto it = std::find_if(t.best.begin(), t.best.end(),
                                   [v](const auto &p) { return v > p.second; });  // ties: lower id first
            t.best.insert(it, {i, v});
            if (static_cast<int>(t.best.size()) > k) t.best.pop_back();
        }
    }
    return t;
}

double ms_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char **argv) {
    std::string model_path, prompt_path, force_path, logits_path, bos = "auto", kv = "f16";
    int fa = 0, threads = 1, n_gen = 32;
    for (int i = 1; i < argc; ++i) {
        std::string a = argv[i];
        auto next = [&]() -> std::string {
            if (i + 1 >= argc) die(("missing value for " + a).c_str());
            return argv[++i];
        };
        if (a == "-m") model_path = next();
        else if (a == "-f") prompt_path = next();
        else if (a == "--fa") fa = std::atoi(next().c_str());
        else if (a == "-t") threads = std::atoi(next().c_str());
        else if (a == "-n") n_gen = std::atoi(next().c_str());
        else if (a == "--bos") bos = next();
        else if (a == "--kv") kv = next();
        else if (a == "--force") force_path = next();
        else if (a == "--logits-out") logits_path = next();
        else die(("unknown argument " + a).c_str());
    }
    if (model_path.empty() || prompt_path.empty() || n_gen < 1 || (kv != "f16" && kv != "f32")) {
        die("usage: peer_reference -m MODEL.gguf -f PROMPT.txt [--fa 0|1] [-t THREADS] [-n N_GEN] "
            "[--bos auto|0|1] [--kv f16|f32] [--force IDS.txt] [--logits-out FILE]");
    }

    const std::string text = read_file(prompt_path);
    std::vector<llama_token> forced;
    if (!force_path.empty()) {
        std::istringstream ss(read_file(force_path));
        for (long v; ss >> v;) forced.push_back(static_cast<llama_token>(v));
        if (static_cast<int>(forced.size()) < n_gen - 1) die("--force file has fewer than N_GEN - 1 ids");
    }

    llama_backend_init();
    llama_model_params mparams = llama_model_default_params();
    llama_model *model = llama_model_load_from_file(model_path.c_str(), mparams);
    if (!model) die("model load failed");
    const llama_vocab *vocab = llama_model_get_vocab(model);
    const int n_vocab = llama_vocab_n_tokens(vocab);

    const bool add_bos = bos == "auto" ? llama_vocab_get_add_bos(vocab) : bos == "1";
    const bool add_special = add_bos;  // BOS is the only special token added here (add_eos is false for our models)
    int n = -llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), nullptr, 0, add_special, true);
    std::vector<llama_token> ids(std::max(n, 0));
    if (llama_tokenize(vocab, text.data(), static_cast<int32_t>(text.size()), ids.data(),
                       static_cast<int32_t>(ids.size()), add_special, true) != n) {
        die("tokenize failed");
    }
    if (bos == "1" && !llama_vocab_get_add_bos(vocab)) die("--bos 1 on a model without add_bos_token is not supported");
    const int n_prompt = static_cast<int>(ids.size());
    if (n_prompt == 0) die("empty prompt");

    llama_context_params cparams = llama_context_default_params();
    cparams.n_ctx = static_cast<uint32_t>((n_prompt + n_gen + 255) / 256 * 256);
    cparams.n_batch = cparams.n_ubatch = static_cast<uint32_t>(std::max(n_prompt, 64));
    cparams.n_threads = cparams.n_threads_batch = threads;
    cparams.flash_attn_type = fa ? LLAMA_FLASH_ATTN_TYPE_ENABLED : LLAMA_FLASH_ATTN_TYPE_DISABLED;
    cparams.type_k = cparams.type_v = kv == "f32" ? GGML_TYPE_F32 : GGML_TYPE_F16;
    // Only the last position's logits are ever read (llama_batch_get_one asks for just that one).
    // Without this, the compute buffer is reserved for n_ubatch output rows: n_vocab * n_ubatch
    // floats, 17 GB for a 16.5k-token Gemma 3 prompt. The graph that runs is the same either way.
    cparams.n_outputs_max = 1;
    cparams.no_perf = true;
    llama_context *ctx = llama_init_from_model(model, cparams);
    if (!ctx) die("context creation failed");

    FILE *logits_out = nullptr;
    if (!logits_path.empty() && !(logits_out = std::fopen(logits_path.c_str(), "wb"))) die("cannot write --logits-out");

    std::vector<llama_token> greedy;
    std::vector<float> margins;
    Top top5;
    double prefill_ms = 0, decode_ms = 0;
    auto t0 = std::chrono::steady_clock::now();
    if (llama_decode(ctx, llama_batch_get_one(ids.data(), n_prompt)) != 0) die("prompt decode failed");
    prefill_ms = ms_since(t0);
    t0 = std::chrono::steady_clock::now();
    for (int step = 0; step < n_gen; ++step) {
        const float *logits = llama_get_logits_ith(ctx, -1);
        if (!logits) die("no logits");
        if (logits_out) std::fwrite(logits, sizeof(float), n_vocab, logits_out);
        Top t = top_k(logits, n_vocab, step == 0 ? 5 : 2);
        if (step == 0) top5 = t;
        greedy.push_back(t.best[0].first);
        margins.push_back(t.best[0].second - t.best[1].second);
        if (step + 1 == n_gen) break;
        llama_token next = forced.empty() ? t.best[0].first : forced[step];
        if (llama_decode(ctx, llama_batch_get_one(&next, 1)) != 0) die("decode failed");
    }
    decode_ms = ms_since(t0);
    if (logits_out) std::fclose(logits_out);

    int eog_at = -1;
    std::string greedy_text;
    for (size_t i = 0; i < greedy.size(); ++i) {
        if (eog_at < 0 && llama_vocab_is_eog(vocab, greedy[i])) eog_at = static_cast<int>(i);
        greedy_text += piece(vocab, greedy[i]);
    }

    std::printf("{\"prompt_tokens\": %d, \"prompt_ids\": [", n_prompt);
    for (int i = 0; i < n_prompt; ++i) std::printf("%s%d", i ? ", " : "", ids[i]);
    std::printf("], \"top5\": [");
    for (size_t i = 0; i < top5.best.size(); ++i)
        std::printf("%s{\"id\": %d, \"logit\": %.6f}", i ? ", " : "", top5.best[i].first, top5.best[i].second);
    std::printf("], \"greedy\": [");
    for (size_t i = 0; i < greedy.size(); ++i) std::printf("%s%d", i ? ", " : "", greedy[i]);
    std::printf("], \"greedy_text\": %s, \"eog_at\": %d, \"margins\": [", json_string(greedy_text).c_str(), eog_at);
    for (size_t i = 0; i < margins.size(); ++i) std::printf("%s%.4f", i ? ", " : "", margins[i]);
    std::printf("], \"add_bos\": %s, \"flash_attn\": %s, \"threads\": %d, \"n_ctx\": %u, \"n_batch\": %u, "
                "\"n_ubatch\": %u, \"kv_cache_type\": \"%s\", \"forced\": %s, \"n_vocab\": %d, \"prefill_ms\": %.1f, \"decode_ms\": %.1f}\n",
                add_bos ? "true" : "false", fa ? "true" : "false", threads, llama_n_ctx(ctx), llama_n_batch(ctx),
                llama_n_ubatch(ctx), kv.c_str(), forced.empty() ? "false" : "true", n_vocab, prefill_ms, decode_ms);

    llama_free(ctx);
    llama_model_free(model);
    llama_backend_free();
    return 0;
}
