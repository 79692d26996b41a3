"""The cue tables the inference reads a description with (:mod:`ragtune.audit.infer`).

A cue is a phrase pattern over the lower-cased description with a weight: "questions about",
"look up", "in stock" for knowledge; "in the format", "house style", "turn X into" for behaviour.
The tables follow the questions of the audit in order: what it is about, whether it changes
within 6 months, whether 1-2 examples show it, whether it must hold across thousands of calls.
They are data only; the scoring, and the reasons built from the words that matched, are in
:mod:`ragtune.audit.infer`.
"""

from __future__ import annotations

import re

Cue = tuple[re.Pattern[str], float]


def _table(*pairs: tuple[str, float]) -> list[Cue]:
    """Compile (pattern, weight) pairs."""
    return [(re.compile(pattern), weight) for pattern, weight in pairs]


# -- what it is about: knowledge (what the model knows) or behaviour (how it behaves) -----------

KNOWLEDGE = _table(
    # asking for information
    (
        r"\b(answer|field|handle)s?\b[^.;]{0,40}\bquestions?\b[^.;]{0,25}\b(about|on|regarding|from)\b",
        2.5,
    ),
    (r"\bquestions? (about|on|regarding)\b", 1.5),
    (r"\blook(s|ing)? ?up\b|\blookups?\b", 2.5),
    (r"\b(know|knows|knowing|knowledge of)\b", 1.5),
    (r"\b(know|knows|knowing)\b (which|what|when|where|who|whether|how many|how much)\b", 1.5),
    (
        r"\b(pull|pulls|fetch|fetches|get|gets|read|reads|look (it |them )?up|retrieve|retrieves|query|queries)\b[^.;]{0,25}\bfrom (the|our|their|its|a|an)\b",
        2.5,
    ),
    (r"\bfor (a|the|each|this|that|one) (specific|given|particular|named) \w+", 1.5),
    (
        r"\b(for|of) (an?|the|each) (authenticated|logged-in|signed-in|verified|current|calling) (customer|user|member|patient|client|account|caller|employee)\b|\b(account|accounts|transactions|statements|payments|orders|shipments|claims|bookings|tickets) (balance|history|status|details|numbers?)\b|\blast (\w+ )?(transactions|orders|payments|visits|purchases|bookings)\b",
        2.0,
    ),
    (
        r"\b(what|which|how)\b[^.;]{0,60}\b(says?|said|states?|stated|mandates?|requires?|demands?|assigns?|prescribes?|allows?|permits?|forbids?|recommends?|were decided|was decided|decided)\b",
        2.5,
    ),
    (r"\b(quote|quotes|quoting|cite|cites|citing)\b (the|our|from|its|their|verbatim)\b", 2.0),
    (
        r"\banswer(s|ing)? (from|using|based on|out of) \b|^report (which|what|the|whether|how)\b|\breports? (which|what|whether|how many|how much)\b",
        2.5,
    ),
    (r"\b(published|issued|mandated|laid down|in force|on file)\b", 1.0),
    (
        r"\bfrom (the|our|their|its) ([\w-]+ ){0,2}(formular(y|ies)|register|registry|database|manual|handbook|catalogu?e|archive|records?|ledger|library|wiki|intranet|sharepoint|crm|erp|system|portal|spreadsheet|sheet|table|docs?|documentation|guide|binder|book|code|regulation|act|standard|protocol|minutes)\b",
        2.0,
    ),
    (
        r"\b(asking|ask|asks|asked) (about|for|what|which|when|where|who|whether|if|how much|how many)\b|\bget (an answer|answers|the answer)\b|\b(which|what) [\w-]+ (\w+ ){0,3}(aired|played|happened|ran|opened|closed|changed|applies|apply)\b",
        1.5,
    ),
    (
        r"\b(rotas?|entries|formular(y|ies)|rulings?|precedents?|interactions|contraindications|dosages?|case law|manuals|glossar(y|ies)|spec sheets?|sheets|compositions?|dimensions|ingredients|allergens|materials|dues|dates|times|calendars?|routes|rosters|news|fixtures|standings|scores|closures|outages|delays|cancellations|disruptions|meanings?|left|remaining|sold out|spots|seats|sizes|who (sings|plays|works|owns|leads|runs|is|does))\b",
        1.2,
    ),
    (
        r"\banswer (who|which|what|when|where|whether|how much|how many)\b|\b(maintained|owned|kept|published|issued|compiled|curated) by\b|\bby (postcode|post code|zip( code)?|region|country|state|city|county|model|sku|id|date|location|store|branch|jurisdiction)\b|\b(accurate|correct|up to date|up-to-date) (for|as of|on) (today|now|the day)\b",
        2.0,
    ),
    (
        r"\b(waivers?|disclaimer text|terms and conditions|fine print|legal text|age rules|rules for|logs?|playout|history|minutes of|inventory of)\b",
        1.5,
    ),
    (
        r"\b(estimates?|provenance|results|readings|measurements|history of|upcoming|scheduled|next (sale|event|departure|meeting|shift|delivery))\b",
        1.0,
    ),
    (
        r"\b(tell|tells|telling)\b[^.;]{0,40}\b(which|what|how many|how much|when|where|who|whether|if|about|the)\b",
        2.0,
    ),
    (
        r"\b(give|gives|provide|provides|quote|quotes|surface|surfaces|pull|pulls|share|state|states|list|lists|cite|cites|recommend|recommends|compare|check|checks)\b[^.;]{0,30}\b(the|which|what|how|whether|each|their|our|its|today's)\b",
        0.8,
    ),
    (r"\bcheck (whether|if|which)\b|\bwhich\b[^.;]{0,40}\b(are|is|hold|apply|applies)\b", 1.2),
    (r"\bexplain(s|ing)? (what|how|the|which|why)\b", 0.8),
    (
        r"\b(accurate|correct|right|up-to-date|valid)\b[^.;]{0,20}\b(answers?|information|info|facts?|prices?|figures?|specs?|details?|numbers?)\b",
        1.5,
    ),
    # information nouns
    (
        r"\b(price|prices|pricing|priced|rates?|fees?|tariffs?|costs?|copays?|premiums?|charges|surcharges?)\b",
        1.5,
    ),
    (
        r"\b((?<!-)polic(y|ies)|regulations?|rules|requirements?|laws?|statutes?|codes? of conduct|terms|conditions|entitlements?|allowances?|eligibility|thresholds?|(tax|income|age|price) brackets?|limits|caps|versions?)\b",
        1.2,
    ),
    (
        r"\b(handbook|manual|documentation|docs|wiki|faqs?|knowledge base|catalogu?e|directory|inventory|stock|warehouses?|menus?|specs|specifications|datasheets?|contracts?|clauses|articles|definitions|glossary|records?|database|tables|spreadsheet|crm|erp|ledger|registry|index)\b",
        1.2,
    ),
    (
        r"\b(status|balance|availability|available|schedules?|timetables?|slots?|opening (times|hours)|hours of|deadlines?|dates of|tracking|bookings?|booked|reservations?|rotation|on-call|roster|contacts?|addresses?|locations?|in-network|coverage|covered|benefits|credits?|points|openings?|listings?|vacanc(y|ies))\b",
        1.3,
    ),
    (
        r"\b(patch notes|release notes|changelog|error codes?|drop rates|procedures? for|steps to|instructions)\b",
        1.2,
    ),
    (
        r"\b(current|latest|up-to-date|today's|this (month|week|quarter|season|semester|year)'?s?|right now|real-time|live)\b",
        1.0,
    ),
    (r"\b(facts?|information|info|figures|details|data|numbers)\b", 0.8),
    (r"\b(memoris|memoriz|train(ing)? (it )?on (our|the|this))", 1.5),
    (
        r"\b(as (written|stated|listed|set out|defined|published) in|according to|per the|from the (binder|manual|handbook|register|database|table|spreadsheet|docs|documentation|wiki|guidelines|sop|catalogu?e|contract|policy))\b",
        2.0,
    ),
    (
        r"\b(needs?|wants?|requires?|must have)\b[^.;]{0,12}\b(to know|access to|to see|to find|to look up|to check)\b",
        0.8,
    ),
    (r"\b(binder|sop|guidelines|register|holdings|repository|archive|portal)\b", 1.0),
    (
        r"\b(chang(es|ed)|updat(es|ed)|revis(es|ed)) (daily|weekly|monthly|hourly|often|frequently|every|each)\b",
        1.0,
    ),
    (
        r"\b(recall|remember|recalls|look(s)? for|find|finds|fetch|fetches|retrieve|retrieves)\b",
        1.0,
    ),
)

BEHAVIOR = _table(
    # form of the output
    (
        r"\b(format|formats|formatted|formatting|layouts?|structur(e|es|ed|ing)|schemas?|templates?|patterns?|system prompt|prompt (defining|describing|that (defines|describes)))\b",
        2.0,
    ),
    (
        r"\b(talk|talks|speak|speaks|sound|sounds|act|acts|behave|behaves|write|writes|respond|responds|reply|replies|answer|answers)\s+(like|as)\b|\b(role-?play\w*|pretend\w*|mascot|in character|impersonat\w*)\b",
        2.0,
    ),
    (
        r"\bfirst\b[^.;?]{0,50}\bthen\b|\bmake (it|the (bot|model|assistant|agent))\b|\bhow (it|the (bot|model|assistant|agent)|the \w+ (bot|assistant|agent)) (\w+ ){0,2}(answers?|repl(y|ies)|responds?|writes?|structures?|formats?|phrases?|talks?|handles?|reasons?)\b",
        1.8,
    ),
    (
        r"\b(json|xml|yaml|markdown|csv|html|sql|bullets?|bulleted|bullet points|table|headings?|headers?|sections?|paragraphs?|lines?|fields?|columns?|sentences?)\b",
        0.8,
    ),
    (
        r"\b(style|styles|tone|voice|register|persona|phrasing|rhythm|cadence|diction|vocabulary|sign-off|conventions|formality|house (style|voice|way|format|structure|tone|rules|manner)|our house|idiom|prose|spelling|grammar|word choice|jargon|reading level|plain english|plain-language)\b",
        2.2,
    ),
    (
        r"\b(terse|concise|friendly|warm|polite|politely|empathetic|formal|informal|playful|cautious|conservative|encouraging|cheerful|condescending|inclusive|distinctive|signature|consistent|same way|identical)\b",
        1.0,
    ),
    (
        r"\b(reasoning|reason through|reason step|methodology|method|heuristics|rubric|step[- ]by[- ]step|stepwise|chain of thought|habits?|judg(e)?ments?|the way our|as if our|like our|manner|demeanou?r|attitude|temperament|etiquette|courtesy|politeness|respectful|deferential|non-judgmental|gentle|firm|(that|this|its|the bot'?s|the model'?s|the assistant'?s) behaviou?r)\b",
        1.6,
    ),
    # transforming input into output
    (
        r"^(summar(y|ies) of|classification of|translations? of|rewrites? of|format|convert|turn|rewrite|summari[sz]e|extract|tag|classify|categori[sz]e|score|grade|draft|write|reply|respond|emit|produce|generate|translate|locali[sz]e|soften|redact|normali[sz]e|return|end|close|keep|follow|apply|present|pull the key|review|flag|label|sort|triage|route|assign|map|bucket)\b",
        2.0,
    ),
    (
        r"\b(convert|converts|turn|turns|rewrite|rewrites|rewritten|rewriting|summari[sz]e|summari[sz]es|summar(y|ies)|extract|extracts|tag|tags|classify|classifies|categori[sz]e|score|scores|grade|grades|draft|drafts|drafting|write|writes|written|reply|replies|respond|responds|emit|emits|produce|produces|generate|generated|translate|locali[sz]e|soften|redact|normali[sz]e|paraphrase)\b",
        1.2,
    ),
    (
        r"\b(into|as|in|with) (a|an|our|the|one|two|three|five|short|small|quick|brief)?\s?(?:[\w-]+\s){0,3}(json|tables?|lists?|outlines?|notes?|summar(y|ies)|objects?|sentences?|tweets?|memos?|structure|format|bullets?|repl(y|ies)|messages?|paragraphs?|taxonomy|categories|codes|buckets|lines?|haikus?|poems?|rhymes?|verses?|rows?|columns?|cells?|fields?|spreadsheet|blurbs?|captions?|labels?)\b",
        1.5,
    ),
    (
        r"\b(sign(s)? off|ends? (with|each|every)|closes? (with|each|its)|starts? (with|each)|opens? with|begins? with|emojis?|exclamation|greeting|salutation|capitali[sz]\w*|punctuation|hyphenation|abbreviations?|numbered|modell?ed on|in the (style|voice|manner) of)\b",
        1.5,
    ),
    (r"\b(pull|pulls|get|gets|take|takes|pick|picks)\b[^.;]{0,40}\bout of\b", 2.0),
    (
        r"\b(route|assign|assigns|map|bucket|sort|sorts)\b[^.;]{0,50}\b(into|to) (one of|our|the|a|an)\b|\btaxonomy\b",
        2.0,
    ),
    (r"'[^']{2,30}'|\"[^\"]{2,30}\"", 0.8),
    (r"\bwording\b", 1.2),
    (
        r"\b(derive|derives|generate|generates|write|writes|draft|drafts|produce|produces|create|creates|compose|composes)\b[^.;]{0,40}\bfrom\b",
        1.5,
    ),
    (r"\b(output|outputs)\b", 1.5),
    (
        r"\b(rewrite|rewriting|conversion|transformation|reformat\w*|restyl\w*)\b[^.;]{0,40}\binto\b|\bthe same (steps|order|way|format|structure|wording|phrasing|tone|sequence)\b",
        2.0,
    ),
    (
        r"\b(detect|detects|moderate|moderation|screen|screens|filter|filters|triage|prioriti[sz]e|score|scores)\b",
        1.2,
    ),
    (
        r"\b(always|every time|consistently|never|without exception|must (read|sound|match|follow|stay|keep|end|use|be in))\b",
        0.8,
    ),
    (r"\b(examples?|samples?|few-shot|illustrations?|(cases|shots|demos) in the prompt)\b", 1.2),
    (
        r"\b(sort|sorts|route|assign|bucket|classify|classifies|label|labels|tag|tags|mark|marks|flag|flags|split|divide|group|rank|rate)\b[^.;]{0,50}\b(into|as)\b",
        2.0,
    ),
    (
        r"\b(pull|pulls|extract|extracts|get|take|copy|move)\b[^.;]{0,90}\binto\b",
        2.5,
    ),
    (
        r"\bas (an? )?(sms|email|text|texts|tweet|slack message|json|csv|bullets?|list|table|one-liner|headline|haiku)\b|\bnothing else\b|\b(no more than|at most|under|max(imum)?) \d+ (words|characters|lines|sentences|bullets)\b|\b(word|character) (limit|count)\b",
        2.0,
    ),
    (
        r"\b(texts?|copy|messages?|replies|answers|responses|outputs?|emails?|captions?|descriptions?|posts?|notes?|summaries|reports?|letters?|memos?)\b (must |should |have to |need to )?(follow|match|mirror|use|keep|stay|sound|read)\b",
        2.0,
    ),
    (
        r"\b(in|with) (one|a|our|the) (particular|specific|certain|consistent|single|set) (way|manner|tone|voice)\b|\b(declines?|refuses?|redirects?|deflects?|escalates?|apologi[sz]es?|pushes back)\b",
        1.8,
    ),
    (r"\b(one|two|a|1|2|single|couple of|few) (\w+ )?(examples?|samples?)\b", 1.0),
    (
        r"\bhow (a|an|the|our|each|every|it|they) ([\w-]+ ){0,4}should (look|read|sound|be (formatted|structured|laid out|written|worded))\b",
        2.5,
    ),
    (
        r"\b(in|of|to) (its|the|all|every|each|our|their)? ?(answers|replies|responses|outputs)\b|\bmentioned first\b|\b(first|last) in\b",
        1.5,
    ),
    (
        r"\bfor (\d+|\w+)-year-olds\b|\bfor (kids|children|beginners|teenagers|novices|laypeople|a lay audience)\b",
        1.5,
    ),
    (
        r"\b(answer|answers|reply|replies|respond|responds|talk|talks|write|writes|speak|speaks) in (a|an|the|our|pirate|plain|simple|whatever|their|his|her|british|american|\w+ (tone|style|voice|english|speak))\b|\bspeak\b",
        1.5,
    ),
    (
        r"\b(way of|the way (we|our|it)|follow(s|ing)? (the|our|a|an|one|this|that|their)\b[^.;]{0,30}\b(way|style|voice|format|procedure|methodology|conventions?|template|layout|rubric|structure|pattern))",
        1.8,
    ),
    (
        r"\b(sound|sounds|read|reads) (like|as if)\b|\bin (a|an|our|the)\b[^.;]{0,25}\b(tone|style|voice|format|way)\b",
        1.5,
    ),
)

# -- will it change within 6 months? --------------------------------------------------------------

FREQUENCIES: list[tuple[re.Pattern[str], float]] = [
    (re.compile(p), rate)
    for p, rate in (
        (r"\b(daily|every day|each day|day to day|intraday|hourly|every hour)\b", 365.0),
        (r"\b(weekly|every week|each week|week to week|week-to-week)\b", 52.0),
        (r"\b(every|each) (sprint|fortnight|two weeks)\b|\bfortnightly\b", 26.0),
        (r"\b(every|each) (few|three|four|five|six|eight|\d+) weeks\b", 10.0),
        (r"\b(monthly|every month|each month|this month'?s?|month to month)\b", 12.0),
        (r"\b(every|each) (campaign|season|launch|release)\b|\bthis season'?s?\b", 6.0),
        (r"\b(quarterly|every quarter|each quarter|every three months|this quarter'?s?)\b", 4.0),
        (
            r"\b(every few months|a few times a year|several times a year|every couple of months)\b",
            4.0,
        ),
        (
            r"\b(twice a year|semi-?annual(ly)?|every six months|each semester|this semester'?s?)\b",
            2.0,
        ),
        (r"\b(annual(ly)?|yearly|every year|each year|once a year)\b", 1.0),
        (r"\b(every|each) (five|5|ten|10|several|few) years\b", 0.2),
    )
]

# Words that carry their own rate of change, with no verb: "today's mortgage rates".
SELF_DATED: list[tuple[re.Pattern[str], float]] = [
    (re.compile(r"\b(today'?s|real-time|live|intraday)\b"), 365.0),
    (re.compile(r"\bthis (week)'?s?\b"), 52.0),
    (re.compile(r"\bthis (month)'?s?\b"), 12.0),
    (re.compile(r"\bthis (season)'?s?\b"), 6.0),
    (re.compile(r"\bthis (quarter)'?s?\b"), 4.0),
    (re.compile(r"\bthis (semester)'?s?\b"), 2.0),
]

CHANGE_VERB = re.compile(
    r"\b(updat(e|es|ed|ing)|revis(e|es|ed|ing|ions?)|chang(e|es|ed|ing)|edit(s|ed|ing)?|"
    r"adjust(s|ed|ing|ments?)?|push(es|ed)?|refresh(es|ed|ing)?|rewrit(es|ten|ing)|rewrote|"
    r"reinvent(s|ed|ing)?|move[sd]?|moving|fluctuat(e|es|ed|ing)|evolv(e|es|ed|ing)|"
    r"iterat(e|es|ed|ing)|experiment(s|ed|ing)?|tweak(s|ed|ing)?|redesign(s|ed|ing)?|"
    r"reprice[sd]?|renew(s|ed)?|rotat(e|es|ed|ing)|republish(es|ed)?|replac(e|es|ed|ing)|"
    r"redefin(e|es|ed|ing)|rework(s|ed|ing)?|reshap(e|es|ed|ing)|restructur(e|es|ed|ing)|"
    r"overhaul(s|ed|ing)?|shift(s|ed|ing)?|switch(es|ed|ing)?|swap(s|ped|ping)?|"
    r"redraw(s|n|ing)?|redrew|pick(s|ed)?|choos(e|es)|chose|decid(e|es)|sets|new versions?|a/b)\b"
)
# Words that say on their own that a behaviour is not settled yet.
UNSETTLED = re.compile(
    r"\b(experimental|in flux|not settled|unsettled|work in progress|still (deciding|experimenting|"
    r"iterating|figuring)|tries a new|try a new|trying (new|out|different)|a/b[- ]test\w*|"
    r"every other (issue|week|release|edition|episode)|keeps? (changing|shifting|evolving))\b"
    r"|\b(each|every) (issue|time|week|edition|episode|release|campaign|season|show)\b[^.;]{0,60}\b(different|new)\b"
    r"|\b(a different|a new|a fresh)\b[^.;]{0,30}\b(each|every) (issue|time|week|edition|episode|release|campaign|season|show)\b"
)
# A behaviour changes when a change verb comes with a frequency or with words of recurrence
# ("revised last month and will probably revise again soon"), not when "rewrite" is the task.
RECURRENCE = re.compile(
    r"\b(again|often|frequently|constantly|regularly|keeps?|keeping|still|soon|each time|"
    r"every time|recently|last (week|month|quarter|sprint)|in flux|all the time|newest|latest|"
    r"(for|with|at|before|after|per) (every|each)|whatever|whenever|each time)\b"
)

VOLATILE_KNOWLEDGE = _table(
    (
        r"\b(price|prices|pricing|rates?|fees?|tariffs?|quotes?|premiums?|copays?|discounts?|promo(tion)?s?|promo codes?|offers?|deals?)\b",
        1.2,
    ),
    (
        r"\b(in stock|stock|inventory|availability|available|slots?|booked|bookings?|reservations?|status|balance|tracking|gate|delays?)\b",
        1.5,
    ),
    (
        r"\b(current|currently|latest|up-to-date|today'?s?|tonight|right now|real-time|live|this (month|week|quarter|season|semester|year)'?s?|recent|new)\b",
        1.5,
    ),
    (
        r"\b(schedules?|timetables?|rota|rotation|on-call|roster|deadlines?|patch notes|release notes|changelog|listings?|on the market|openings?|vacanc(y|ies)|configured|configuration|flags?)\b",
        1.2,
    ),
    (r"\b((?<!-)polic(y|ies)|thresholds?|brackets?|eligibility|assessments?)\b", 0.6),
    (r"\bas of\b|\b(q[1-4]|20\d\d)\b", 0.8),
)

STABLE = _table(
    (
        r"\b(stable|unchanged|hasn'?t changed|has not changed|rarely (change|changes|changed|updated|revised)|seldom|timeless|settled|long-standing|established|for years|for decades|never changes?|permanent)\b",
        2.5,
    ),
    (
        r"\b(articles?|declaration|convention|treaty|constitution|definitions|incoterms|iso \d+|historical|history of|classic|textbook|fundamentals|principles)\b",
        1.5,
    ),
    (r"\b(every|each) (five|5|ten|10|several) years\b", 2.0),
)

# -- can 1-2 examples in the prompt show it? ------------------------------------------------------

EXAMPLES_FAIL = re.compile(
    r"\b(examples?|samples?|illustrations?|demos?|few-shot|sample (clauses|replies|texts?)|prompting|prompts?|prompted|instructions)\b[^.;]{0,45}"
    r"\b(can'?t|cannot|can not|never|don'?t|do not|doesn'?t|haven'?t|have not|only partly|not enough|"
    r"isn'?t enough|aren'?t enough|fail\w*|come out generic|generic|miss\w*|fall short|alone|drift\w*|"
    r"inconsistent\w*|unreliabl\w*|not reliabl\w*|wander\w*|slip\w*|not (quite|always)|"
    r"break\w*|lose|loses|forget\w*|ignor\w*|costly|expensive)\b"
    r"|\b(can'?t|cannot|hard to|impossible to|difficult to|too \w+ to)\b[^.;]{0,30}\b(show|capture|convey|describe|teach|demonstrate|explain|spell out)\b"
)

SHOWN = _table(
    (
        r"\b(one|two|a|an|single|1|2|couple of|few|pair of|handful of)\s+((worked|labell?ed|clear|good|short|sample|annotated|illustrative|solved)\s+)?(examples?|samples?|sample \w+|illustrations?|demos?|demonstrations?|cases|shots)\b",
        2.5,
    ),
    (r"\b(an example|a sample|the examples|the two examples|the example|a template)\b", 1.5),
    (r"\b(examples?|samples?) (is|are|would be|will be)? ?(enough|sufficient|plenty)\b", 1.5),
    (
        r"\b(simple|simply|straightforward|easy|obvious|trivial|basic|short(?!-)|one-line|two-line|three-line|one-page|single-line|quick)\b",
        1.2,
    ),
    (r"\bsmall\b", 0.6),
    (
        r"\b(is enough|are enough|will do|should do|would do|suffices?|suffice|sufficient|does the job|do the job|handles it|covers it|works fine|makes it (obvious|clear)|make it (obvious|clear)|shows exactly|conveys|demonstrates|is clear)\b",
        1.5,
    ),
    (r"\b(exactly like|the way the|following a)\b|\b(paste|pasting)\b[^.;]{0,40}\bonce\b", 1.0),
    # A format spelled out in the description itself is one an example can show.
    # ... a list of short fields closing the sentence, or a quoted literal with punctuation.
    (r":\s*[\w'/-]+( [\w'/-]+){0,2}(,\s*(and |or )?[\w'/-]+( [\w'/-]+){0,2}){2,}\s*(\.|$)", 1.5),
    (r"'[^']{0,30}[,:/<>|#{}\[\]-][^']{0,30}'|\"[^\"]{0,30}[,:/<>|#{}\[\]-][^\"]{0,30}\"", 1.0),
    (
        r"\b(in|on|as) (exactly )?(one|two|three|four|five|six|a single|its own|a|\d) (sentence|line|lines|sentences|bullets?|paragraphs?|rows?|words?)\b|\bnumbered (steps|list|points)\b",
        1.5,
    ),
)

NOT_SHOWN = _table(
    (
        r"\b(subtle|nuanced?|nuance|particular|distinctive|signature|hard to describe|intricate|complex|complicated|elaborate|long|detailed|lengthy|idiosyncratic|peculiar|quirks?|quirky|exact|precise|idiom)\b",
        1.5,
    ),
    (
        r"\b(deviations?|deviate|breaks? (the|our)|parser|downstream|strict(ly)?|zero tolerance|validat\w*|reject\w*)\b",
        1.5,
    ),
    (
        r"\b(house (style|voice|way)|our (house|established|brand|firm'?s|team'?s|staff) ?\w*|style guide|reviewers?|editors?|graders?|examiners?|assessors?|moderators?|auditors?|annotators?|raters?|experts?|seniors?|senior \w+|staff engineers|certified)\b",
        1.2,
    ),
    (
        r"\b(\d[\d,]*\+?|hundreds|dozens|tens)[- ](token|tokens|page|pages|line|lines|rules|fields|steps|categories|classes|codes)\b",
        2.0,
    ),
    (
        r"\b(taxonomy|rubric|methodology|procedure|playbook|conventions|habit|judg(e)?ments?|months to (pick up|learn|absorb|master|internali[sz]e)|years to (learn|master))\b",
        1.2,
    ),
    (
        r"\b(system prompt|prompt (holding|describing|with)|eats|stuff|stuffing|context window)\b",
        1.5,
    ),
    (
        r"\b(exactly|identical|same (fixed )?schema|fixed schema|never (deviate|drift)|slips?|drift\w*)\b",
        1.0,
    ),
    (r"\b(recogni[sz]e|recogni[sz]able|spot|notice|can tell)\b", 1.2),
    (r"\b(fixed|rigid|strict|our own)\b", 1.0),
    (
        r"\b(match|matches|matching|mirror|mirrors|mirroring|agree with|agreeing with|like|as) (our|the) (trained |senior |experienced |expert |human |own )?(reviewers|examiners|graders|editors|experts|assessors|moderators|auditors|annotators|specialists|coders|raters|underwriters|analysts|adjusters)\b",
        2.0,
    ),
    (
        r"\b(buyers|clients|customers|readers|users|regulars|members|patients|listeners|guests) (expect|recogni[sz]e|notice|know)\b|\bidentical(ly)?\b|\bthe same (stepwise|exact|fixed|steps|checks|procedure|way|structure|format)\b|\b(dos and don'?ts|long page|pages of)\b",
        1.5,
    ),
)

# -- must it hold across thousands of calls? -----------------------------------------------------

HIGH_VOLUME = _table(
    (
        r"\b(thousands|millions|hundreds of thousands|tens of thousands|at ([\w-]+ )?scale|high[- ]volume|mass|bulk|huge volume|our volume)\b",
        2.5,
    ),
    (
        r"\b(every|each|all)\b[^.;]{0,25}\b(call|calls|request|requests|message|messages|reply|replies|response|responses|ticket|tickets|conversation|conversations|session|sessions|chat|chats|document|documents|email|emails|clause|clauses|order|orders|transaction|transactions|line|lines|posting|postings|listing|listings|return|returns|visit|visits|alert|alerts|step|steps|row|rows|submission|submissions|filing|filings|application|applications|pull request|invoice|invoices|record|records|item|items|product|products|user|users|customer|customers|learners?|student|students|patient|patients|transcripts?|reports?|posts?|pages?|notes?|summar(y|ies)|interviews?|cases?|claims?|shipments?|prescriptions?|manuscripts?|hearings?|texts?|captions?|descriptions?|logs?|inquir(y|ies)|questions?|answers?|outputs?|articles?|letters?|forms?|memos?|write-ups?|recaps?)\b",
        2.0,
    ),
    (
        r"\b(permanent|in perpetuity|workflow|season after season|year after year|day after day|across (the|all|our|every|each|whole|entire)|entire pipeline|whole pipeline|pipeline|batch|nightly|round the clock|24/7|in production|production traffic|nationwide|full catalogue|whole catalogue)\b",
        1.5,
    ),
    (
        r"\b(always|consistently|consistent|without exception|never (deviate|drift)|every time)\b",
        1.2,
    ),
    (r"\b(every|each|all)\b", 0.8),
    (r"\b(must|has to|have to|needs to|need to)\b", 0.4),
)

LOW_VOLUME = _table(
    (
        r"\b(occasionally|occasional|rarely|now and then|once in a while|ad hoc|ad-hoc|one-off|one off|low[- ]volume|a handful|handful of|few times a (day|week|month|term|year)|a few dozen|few dozen|maybe twice a year|once a (month|quarter|year|week)|twice a year)\b|\b(volume|traffic|usage|load) is (low|small|tiny|light|modest)\b|\blow (traffic|usage)\b|\b(a few|few|a couple of|a handful of|several|some|a dozen|dozens of)\s+([\w-]+\s+){0,2}(a |per |each )?(day|week|month|daily|weekly|monthly)\b|\bin total\b|\bonly (the|one|a|our) [\w-]+ (uses|needs|runs) it\b|\b(then we'?re done|one-time|just once|volunteer project|side project|hobby|internal(ly)? only|internal use)\b",
        2.5,
    ),
    (
        r"\b(prototype|demo|pilot|proof of concept|poc|internal tool|hackathon|experiment|trial|next week'?s)\b",
        2.0,
    ),
    (
        r"\b(run once|once,|once\s*$|once (for|before|during|as)|one-time|single batch|a single run|one batch|(for|during) (a|the) migration|before we (shut|switch|move|migrate)|backfill)\b",
        3.0,
    ),
    (
        r"\bfor (the|our|a|next week'?s?|this year'?s?) ([\w-]+ ){0,2}(party|event|festival|gala|fair|conference|launch|demo|presentation|pitch|meetup|ceremony|open day)\b",
        2.0,
    ),
    (
        r"\b(weekly|monthly|quarterly|annual|yearly)\b(\s[\w-]+){0,2}\s(update|report|summary|meeting|newsletter|digest|review|gala|transcript|memo|letter|email|call)s?\b|\b(it|this) runs (once|weekly|monthly)\b",
        3.0,
    ),
)

# A scale stated in words, with no figure: "thousands", "at scale".
SCALE_WORDS = re.compile(
    r"\b(thousands|millions|hundreds of thousands|tens of thousands|at ([\w-]+ )?scale|high[- ]volume)\b"
)
