// The Sparse Frontier's story tasks (Nawrot et al. 2025, "The Sparse Frontier: Sparse Attention
// Trade-offs in Transformer LLMs", sparse_frontier/tasks/story): a narrative of chapters in
// which the protagonist visits a place, meets a character, buys an item and sometimes sells an
// older one. Followed: chapter structure (intro, reason, event, encounter, 3 conversation
// lines, purchase, sale with probability 0.5, farewell, conclusion, one extra line), unique
// (place, character) pairs and items, the prompt frame, the questions and the answer formats:
//   story_retrieval  16 numbered questions on a chapter's place / character / item (exact)
//   story_multihop   the item bought just before a given item (exact)
//   story_filtering  purchases removed from 3 chapters; name them (set IoU)
// Our own: every sentence template and the lists of places, characters, events and items.
#include <algorithm>
#include <set>

#include <fmt/format.h>

#include "core/error.h"
#include "eval/fit.h"
#include "eval/generators.h"
#include "eval/rng.h"
#include "eval/text_util.h"

namespace ls::eval {

namespace {

using Templates = std::vector<std::string>;

const Templates kPlaces{"Amberfall", "Brightwater", "Cinderholt", "Dunmore", "Eastmere", "Foxhollow", "Glenrock",
                        "Harrowgate", "Ironbridge", "Juniper Cove", "Kestrel Point", "Lowmarsh", "Millbrook",
                        "Northwold", "Oakenshaw", "Pebbleford", "Quarry Hill", "Ravensden", "Saltmarsh", "Thornbury",
                        "Upper Vale", "Violet Harbour", "Westerby", "Yarrowdale", "Ashcombe", "Bramblewick",
                        "Coldharbour", "Deepwell", "Elmstead", "Fairhaven", "Greystone", "Hollowmere",
                        "Larkspur", "Marrow End", "Nettlebed", "Oldcastle", "Pinecrest", "Redwater", "Stonebridge",
                        "Tidewater"};
const Templates kCharacters{"Aldric", "Beatrix", "Cormac", "Delphine", "Edmund", "Fiora", "Gideon", "Hazel",
                            "Ivo", "Jessamy", "Kit", "Lorcan", "Maud", "Nell", "Osric", "Perpetua", "Quill",
                            "Rosalind", "Silas", "Tamsin", "Ulric", "Verity", "Wystan", "Yvaine", "Ansel", "Blythe",
                            "Caspian", "Dorcas", "Emrys", "Fenella", "Godric", "Honora", "Idris", "Juno", "Lettice",
                            "Mordecai", "Niamh", "Odo", "Pell", "Rowena"};
const Templates kEvents{"a harvest fair", "a sudden flood", "a disputed election", "a royal visit",
                        "a fire in the granary", "a horse race", "a week of heavy fog", "a guild quarrel",
                        "a wedding procession", "a failed robbery", "a traveling circus", "a shortage of bread",
                        "a meteor shower", "a lost child found", "a debate among scholars", "a strike at the docks"};
const Templates kItemAdjectives{"old", "carved", "polished", "battered", "painted", "tiny", "heavy", "curious",
                                "gleaming", "rusty", "elegant", "plain", "rare", "faded", "sturdy"};
const Templates kItemMaterials{"brass", "oak", "pewter", "glass", "leather", "copper", "tin", "walnut", "clay",
                               "silk", "iron", "bone", "willow", "slate"};
const Templates kItemKinds{"compass", "lantern", "teapot", "flute", "music box", "chess set", "spyglass", "inkwell",
                           "hourglass", "locket", "kettle", "drum", "snuffbox", "candlestick", "sextant", "thimble",
                           "birdcage", "clock", "ladle", "mirror"};

const Templates kIntros{
    "{p} reached {l} in the late afternoon, when the market stalls were closing. ",
    "Early in the morning {p} walked into {l}, still tired from the road. ",
    "The road brought {p} to {l} just as the rain stopped. ",
    "{p} arrived in {l} with dust on both boots and an empty stomach. ",
    "After a long ride, {p} came to {l} and looked around the square. ",
    "It was market day when {p} entered {l}. "};
const Templates kReasons{
    "{p} had heard that the traders of {l} were fair and well supplied. ",
    "A letter from an old friend had urged {p} to visit {l}. ",
    "{p} hoped to find rest and some useful news in {l}. ",
    "The maps said that {l} was the safest stop on the way north, so {p} stayed. ",
    "{p} needed supplies, and {l} was the nearest town. ",
    "Curiosity about the stories told of {l} had drawn {p} there. "};
const Templates kEventLines{
    "Everyone in {l} was talking about {e}. ", "The town was unsettled by {e}. ",
    "{p} learned that {e} had kept the townsfolk busy all week. ", "News of {e} filled every tavern in {l}. ",
    "People gathered in the streets because of {e}. ", "The talk at the inn was all of {e}. "};
const Templates kMeetings{
    "There {p} met {c}, a trader with a cart full of goods. ", "In a narrow lane {p} was greeted by {c}. ",
    "{c}, who kept a small shop near the well, waved {p} inside. ", "At the inn {p} shared a table with {c}. ",
    "{p} was introduced to {c}, known in town as an honest dealer. ",
    "A stranger called {c} offered {p} a seat by the fire. "};
const Templates kConversation{
    "They spoke for a while about the weather and the state of the roads. ",
    "{p} asked about the best route out of {l}. ", "They traded stories of past journeys. ",
    "The conversation turned to prices, which had risen since spring. ",
    "{p} listened to gossip about the local families. ", "They agreed that the winter would be hard. ",
    "{p} described the towns passed on the way to {l}. ", "They laughed about a misadventure on a ferry. ",
    "The talk drifted to old songs and who still sang them. ", "{p} asked whether bandits had been seen nearby. "};
const Templates kPurchases{
    "Before leaving, {p} bought a {i} from {c}. ", "{p} paid {c} a fair price for a {i}. ",
    "{c} sold {p} a {i} after some friendly bargaining. ", "{p} could not resist a {i} and bought it from {c}. ",
    "For a handful of coins, {p} acquired a {i} from {c}. "};
const Templates kSales{
    "{p} sold the {i} to {c}, who had long wanted one. ", "{c} bought the {i} from {p}. ",
    "{p} parted with the {i}, selling it to {c}. ", "In exchange for coins, {p} gave the {i} to {c}. "};
const Templates kFarewells{
    "{p} thanked {c} and said goodbye. ", "{c} wished {p} a safe journey. ", "{p} and {c} shook hands and parted. ",
    "With a nod to {c}, {p} left the shop. ", "{c} waved as {p} walked away. "};
const Templates kConclusions{
    "That evening {p} left {l} behind. ", "{p} spent the night in {l} and set out at dawn. ",
    "The lights of {l} faded as {p} travelled on. ", "{p} was glad to have visited {l}. ",
    "Leaving {l}, {p} thought about the road ahead. "};
const Templates kExtras{
    "The sky was clear and full of stars. ", "A cold wind blew from the hills. ",
    "{p} hummed a tune while walking. ", "Somewhere a dog barked twice. ", "The road was quiet for many miles. ",
    "Birds circled over the fields. ", "{p} counted the coins left in the purse. "};

const char* kIntro =
    "You are given a narrative composed of multiple chapters. Throughout these chapters, the protagonist travels "
    "between different locations, meets various characters, and engages in trading activities. All items mentioned "
    "in the narrative are unique, and their ownership can change through trades. Your task is to carefully read the "
    "narrative and answer the questions based on the provided information.";

// The prompt frame of sparse_frontier/tasks/abstract_prompt.py.
std::string story_prompt(bool several, const std::string& question, const std::string& context,
                         const std::string& answer_format, const std::string& extra) {
  const std::string tag = several ? "questions" : "question";
  return fmt::format(
      "{}\n\nBelow {} your {}. I will state {} both before and after the context.\n\n<{}>\n{}\n</{}>\n\n<context>\n{}\n"
      "</context>\n\n<{}_repeated>\n{}\n</{}_repeated>\n\nInstructions:\n1. First, provide a brief explanation of your "
      "reasoning process. Explain how you identified \n   the relevant information from the context and how you "
      "determined your answer.\n2. Then, provide your final answer following this exact format:\n<answer>\n{}\n"
      "</answer>\n\nYour response must follow this structure exactly:\n<explanation>\nYour explanation here...\n"
      "</explanation>\n<answer>\nYour answer here...\n</answer>\n\nImportant:\n{}\n- Keep your explanations clear, "
      "coherent, concise, and to the point.\n- Do not include any additional text, explanations, or reasoning in the "
      "answer section. Follow the answer format exactly.\n",
      kIntro, several ? "are" : "is", tag, several ? "them" : "it", tag, question, tag, context, tag, question, tag,
      answer_format, extra);
}

struct Chapter {
  int id = 0;
  std::string place, character;
  std::vector<std::string> lines_before, purchase_lines, lines_after;
  std::vector<std::string> bought;
  std::string text() const {
    std::string t = fmt::format("Chapter {}:\n", id);
    for (const auto* part : {&lines_before, &purchase_lines, &lines_after})
      for (const auto& line : *part) t += line;
    return t;
  }
};

std::string fill(Rng& rng, const Templates& templates, const std::string& p, const std::string& l = "",
                 const std::string& c = "", const std::string& e = "", const std::string& i = "") {
  return substitute(rng.choice(templates), {{"p", p}, {"l", l}, {"c", c}, {"e", e}, {"i", i}});
}

// Chapters 1..n; chapter k depends only on the stream before it, so n and n+1 chapters share
// their first n.
std::vector<Chapter> narrative(std::uint64_t seed, std::int64_t n) {
  const std::string p = "Arion";
  Rng rng(seed);
  std::set<std::pair<std::string, std::string>> pairs;
  std::set<std::string> items_seen;
  std::vector<std::string> inventory;
  std::vector<Chapter> chapters;
  for (int id = 1; id <= n; ++id) {
    Chapter ch;
    ch.id = id;
    do {
      ch.place = rng.choice(kPlaces);
      ch.character = rng.choice(kCharacters);
    } while (!pairs.insert({ch.place, ch.character}).second);
    const std::string& l = ch.place;
    const std::string& c = ch.character;
    ch.lines_before.push_back(fill(rng, kIntros, p, l));
    ch.lines_before.push_back(fill(rng, kReasons, p, l));
    ch.lines_before.push_back(fill(rng, kEventLines, p, l, c, rng.choice(kEvents)));
    ch.lines_before.push_back(fill(rng, kMeetings, p, l, c));
    for (auto k : rng.sample(static_cast<std::int64_t>(kConversation.size()), 3))
      ch.lines_before.push_back(substitute(kConversation[k], {{"p", p}, {"l", l}}));
    std::string item;
    do item = rng.choice(kItemAdjectives) + " " + rng.choice(kItemMaterials) + " " + rng.choice(kItemKinds);
    while (!items_seen.insert(item).second);
    ch.bought.push_back(item);
    ch.purchase_lines.push_back(fill(rng, kPurchases, p, l, c, "", item));
    if (!inventory.empty() && rng.unit() < 0.5) {
      std::int64_t k = static_cast<std::int64_t>(rng.below(inventory.size()));
      ch.lines_after.push_back(fill(rng, kSales, p, l, c, "", inventory[k]));
      inventory.erase(inventory.begin() + k);
    }
    inventory.push_back(item);
    ch.lines_after.push_back(fill(rng, kFarewells, p, l, c));
    ch.lines_after.push_back(fill(rng, kConclusions, p, l, c));
    ch.lines_after.push_back(fill(rng, kExtras, p, l, c));
    chapters.push_back(std::move(ch));
  }
  return chapters;
}

std::string compile(const std::vector<Chapter>& chapters) {
  std::string text;
  for (const auto& ch : chapters) text += (text.empty() ? "" : "\n\n") + ch.text();
  return text;
}

std::string heading(int id) { return fmt::format("Chapter {}:\n", id); }

}  // namespace

// Questions of story_retrieval and chapters without a purchase in story_filtering. At namespace
// scope: the prompt builders below are called after the branch that sets them up has ended.
constexpr int kQueries = 16;
constexpr int kRemoved = 3;

FitResult generate_story(const GenerationRequest& req, const PromptFormatter& formatter) {
  const std::uint64_t seed = sample_seed(req.task, req.length, req.seed, req.index);
  const std::int64_t gen_tokens = req.gen_tokens.value_or(1024);  // the paper's max_output_tokens
  const std::int64_t max_chapters = static_cast<std::int64_t>(kPlaces.size() * kCharacters.size() / 2);
  std::int64_t min_chapters = 2;
  PromptBuilder build;
  if (req.task == "story_retrieval") {
    min_chapters = kQueries;
    build = [&](std::int64_t n) {
      auto chapters = narrative(seed, n);
      Rng rng(seed ^ 0xA5A5A5A5ull);
      BuiltPrompt built;
      std::vector<std::string> questions;
      int number = 1;
      for (auto k : rng.sample(n, kQueries)) {
        const Chapter& ch = chapters[k];
        switch (rng.below(3)) {
          case 0:
            questions.push_back(fmt::format("{}. In Chapter {}, which specific location did the protagonist visit?", number, ch.id));
            built.sample.answers.push_back(ch.place);
            break;
          case 1:
            questions.push_back(fmt::format("{}. In Chapter {}, which character did the protagonist interact with?", number, ch.id));
            built.sample.answers.push_back(ch.character);
            break;
          default:
            questions.push_back(fmt::format("{}. In Chapter {}, which specific item was acquired by the protagonist?", number, ch.id));
            built.sample.answers.push_back(ch.bought[0]);
        }
        built.needles.push_back(heading(ch.id));
        ++number;
      }
      built.sample.input = story_prompt(true, join(questions, "\n"), compile(chapters), "1. ANSWER_ONE\n2. ANSWER_TWO\netc.",
                                        "- For answers, use one line per answer with the number prefix\n- Do not include "
                                        "articles like 'the' or 'a' in answers\n- Answers should be specific "
                                        "names/items/locations mentioned in the text");
      built.sample.metric = "exact";
      return built;
    };
  } else if (req.task == "story_multihop") {
    build = [&](std::int64_t n) {
      auto chapters = narrative(seed, n);
      Rng rng(seed ^ 0xA5A5A5A5ull);
      std::int64_t target = 1 + static_cast<std::int64_t>(rng.below(n - 1));  // never the first purchase
      BuiltPrompt built;
      const std::string question = fmt::format(
          "What was the last item that the protagonist acquired before acquiring {}?", chapters[target].bought[0]);
      built.sample.input = story_prompt(false, question, compile(chapters), "ITEM_NAME",
                                        "- Provide only the item name in the answer section.\n- Do not include articles "
                                        "like 'the' or 'a' in your answer.\n- The item name must be exactly as "
                                        "mentioned in the text.");
      built.sample.answers = {chapters[target - 1].bought[0]};
      built.sample.metric = "exact";
      built.needles = {heading(chapters[target - 1].id), heading(chapters[target].id)};
      return built;
    };
  } else {
    min_chapters = kRemoved + 1;
    build = [&](std::int64_t n) {
      auto chapters = narrative(seed, n);
      Rng rng(seed ^ 0xA5A5A5A5ull);
      std::vector<std::int64_t> removed = rng.sample(n, kRemoved);
      std::sort(removed.begin(), removed.end());
      BuiltPrompt built;
      for (auto k : removed) {
        chapters[k].purchase_lines.clear();
        chapters[k].bought.clear();
        built.sample.answers.push_back(std::to_string(chapters[k].id));
        built.needles.push_back(heading(chapters[k].id));
      }
      const std::string question = fmt::format(
          "Identify all chapters where the protagonist did not buy any item.\nNote: There are exactly {} chapters "
          "without any purchases.", kRemoved);
      built.sample.input = story_prompt(false, question, compile(chapters), "chapter_id_1, chapter_id_2, ...",
                                        "- In the answer section, provide only the chapter IDs separated by commas.");
      built.sample.metric = "iou";
      return built;
    };
  }
  auto with_budget = [&](std::int64_t n) {
    BuiltPrompt built = build(n);
    built.sample.gen_tokens = gen_tokens;
    built.sample.metadata["chapters"] = n;
    return built;
  };
  return fit_length(with_budget, formatter, req.task, req.length, gen_tokens, min_chapters, max_chapters);
}

}  // namespace ls::eval
