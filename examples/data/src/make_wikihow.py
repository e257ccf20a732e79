# ruff: noqa: E501 - prose and fixture rows read better unwrapped
"""Builds examples/data/wikihow/wikihowAll_demo.csv (wikihowAll layout: headline, title, text).

Articles written for this project in wikiHow's style; multi-line quoted fields as in the real file.
Run: .venv/bin/python examples/data/src/make_wikihow.py
"""

import csv
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "wikihow" / "wikihowAll_demo.csv"

ARTICLES = {
    "How to Repot a Houseplant": [
        (
            "Choose a pot one size larger.",
            "Pick a pot 2-5 cm wider than the current one. A much larger pot holds too much wet soil around the roots, which invites rot. Make sure it has a drainage hole.",
        ),
        (
            "Water the plant the day before.",
            "Moist roots slide out of the old pot more easily and suffer less shock. Avoid repotting a plant whose soil is soaking wet, because it will be heavy and messy.",
        ),
        (
            "Loosen and remove the plant.",
            "Turn the pot on its side, support the base of the stems with one hand and tap the rim. If roots circle the bottom, tease them apart gently with your fingers.",
        ),
        (
            "Set the plant at the same depth.",
            "Add fresh potting mix to the new pot so the top of the root ball sits about 2 cm below the rim. Fill around the sides, press lightly and water until it drains.",
        ),
    ],
    "How to Make Cold Brew Coffee": [
        (
            "Grind the beans coarsely.",
            "Use about 100 g of coffee for every litre of water. A coarse grind, similar to raw sugar, keeps the brew from turning muddy and bitter.",
        ),
        (
            "Combine coffee and cold water.",
            "Stir the grounds into room-temperature or cold water in a jar until all of them are wet.",
        ),
        (
            "Steep for 12 to 18 hours.",
            "Cover the jar and leave it on the counter or in the fridge. Shorter steeping gives a lighter drink; longer steeping gives a stronger, more chocolatey concentrate.",
        ),
        (
            "Strain and dilute.",
            "Pour the mixture through a paper filter or a fine cloth. Dilute the concentrate with an equal amount of water or milk and serve over ice. It keeps for about a week in the fridge.",
        ),
    ],
    "How to Change a Bicycle Tire": [
        (
            "Remove the wheel.",
            "Shift to the smallest rear cog, open the brake if needed, and release the quick-release lever or unscrew the axle nuts.",
        ),
        (
            "Take off the tire.",
            "Let out any remaining air. Hook two tire levers under the bead a hand-width apart and pull the bead over the rim, then run one lever around the wheel.",
        ),
        (
            "Find the cause of the flat.",
            "Run your fingers carefully around the inside of the tire to find glass or thorns. Skipping this step often means a second flat within minutes.",
        ),
        (
            "Fit the new tube and tire.",
            "Put a little air in the tube so it holds its shape, insert the valve, tuck the tube in, and push the bead back on with your thumbs. Inflate to the pressure printed on the sidewall.",
        ),
    ],
    "How to Write a Cover Letter": [
        (
            "Address a real person.",
            "Look up the name of the hiring manager. A named greeting shows that you did research and reads warmer than a generic opening.",
        ),
        (
            "Open with the role and a hook.",
            "State the position and one concrete reason you are a strong fit, such as a result you achieved that matches the job.",
        ),
        (
            "Show evidence, not adjectives.",
            "Use one or two short examples with numbers. Saying you cut report preparation time by half is more convincing than calling yourself efficient.",
        ),
        (
            "Close with a clear next step.",
            "Thank the reader, say you would welcome an interview, and keep the whole letter to a single page.",
        ),
    ],
    "How to Start a Compost Pile": [
        (
            "Pick a spot.",
            "Choose a level, well-drained area with some shade. Keep it close enough to the kitchen that you will actually use it.",
        ),
        (
            "Balance greens and browns.",
            "Greens are nitrogen-rich materials such as vegetable scraps and grass clippings. Browns are carbon-rich materials such as dry leaves, straw and cardboard. Aim for about three parts brown to one part green by volume.",
        ),
        (
            "Keep it moist.",
            "The pile should feel like a wrung-out sponge. Add water in dry weather and more browns if it turns slimy or smells.",
        ),
        (
            "Turn it regularly.",
            "Mix the pile with a fork every one or two weeks to let air in. Finished compost is dark, crumbly and smells like soil, usually after two to six months.",
        ),
    ],
    "How to Improve Your Sleep": [
        (
            "Keep a regular schedule.",
            "Go to bed and get up at the same times every day, including weekends. A steady rhythm makes falling asleep easier.",
        ),
        (
            "Make the bedroom dark and cool.",
            "A temperature around 18 °C suits most people. Blackout curtains and a quiet room help you stay asleep.",
        ),
        (
            "Limit caffeine and screens.",
            "Avoid caffeine after early afternoon. Put phones and laptops away an hour before bed, because bright light and engaging content delay sleepiness.",
        ),
        (
            "Get out of bed if you cannot sleep.",
            "If you are awake for more than about twenty minutes, get up and do something calm in dim light, then return when you feel sleepy.",
        ),
    ],
    "How to Tie a Bowline Knot": [
        (
            "Make a small loop.",
            "Form an overhand loop in the standing part of the rope, leaving enough working end to make the size of the final loop you need.",
        ),
        (
            "Pass the end up through the loop.",
            "Bring the working end up through the small loop from underneath. Sailors remember this as the rabbit coming out of the hole.",
        ),
        (
            "Go around the standing part.",
            "Take the end behind the standing part of the rope, the rabbit running around the tree.",
        ),
        (
            "Go back down and tighten.",
            "Pass the end back down through the small loop and pull the standing part while holding the loop and end together. The knot will not slip, yet it unties easily after a load.",
        ),
    ],
    "How to Clean a Cast Iron Pan": [
        (
            "Clean it while warm.",
            "Rinse the pan with hot water soon after cooking. A small amount of mild dish soap is fine and will not strip a well-bonded seasoning.",
        ),
        (
            "Scrub off stuck food.",
            "Use a brush or a paste of coarse salt and a little water. Avoid steel wool unless you plan to re-season the pan.",
        ),
        (
            "Dry it completely.",
            "Wipe it with a towel, then set it over low heat for a few minutes so that no moisture is left to cause rust.",
        ),
        (
            "Oil it lightly.",
            "Rub a thin film of cooking oil over the inside while the pan is still warm, then wipe off the excess so it does not turn sticky.",
        ),
    ],
    "How to Memorize a Speech": [
        (
            "Understand the structure first.",
            "Outline the main points and the order in which they build. Memorizing ideas is easier than memorizing a wall of words.",
        ),
        (
            "Learn it in chunks.",
            "Memorize one section at a time, then link it to the next. Repeat the earlier sections each time you add a new one.",
        ),
        (
            "Practice out loud.",
            "Speak the speech at full volume, standing up, as you will on the day. Recording yourself shows where you stumble.",
        ),
        (
            "Use spaced repetition.",
            "Rehearse over several days rather than in one long session. Short, spread-out practice sticks much better than cramming.",
        ),
    ],
    "How to Budget Monthly Expenses": [
        (
            "Track your income.",
            "Write down the money you receive each month after tax. Use an average if your income varies.",
        ),
        (
            "List fixed and variable costs.",
            "Fixed costs include rent and insurance. Variable costs include groceries, fuel and entertainment. Look at three months of bank statements to get realistic numbers.",
        ),
        (
            "Set a savings goal first.",
            "Treat savings as a bill that is paid at the start of the month. Even a small automatic transfer builds the habit.",
        ),
        (
            "Review and adjust.",
            "Compare what you planned with what you spent at the end of each month, and move money between categories instead of abandoning the budget.",
        ),
    ],
    "How to Plant Tomatoes": [
        (
            "Wait for warm soil.",
            "Plant seedlings outdoors after the last frost, when night temperatures stay above 10 °C.",
        ),
        (
            "Plant deeply.",
            "Bury the stem up to the first set of leaves. Tomatoes grow roots along the buried stem, which makes the plant sturdier.",
        ),
        (
            "Support the plants.",
            "Add a stake or cage at planting time so you do not damage the roots later.",
        ),
        (
            "Water at the base.",
            "Give deep, regular water at soil level in the morning. Wet leaves and irregular watering encourage disease and split fruit.",
        ),
    ],
    "How to Fold a Fitted Sheet": [
        (
            "Turn two corners inside out.",
            "Hold the sheet by two adjacent corners with your hands inside the elastic pockets.",
        ),
        (
            "Tuck the corners together.",
            "Bring your hands together and fold one corner over the other so they nest. Repeat with the remaining two corners.",
        ),
        (
            "Lay it flat.",
            "Place the sheet on a table with the elastic edge forming a rough rectangle, and smooth it out.",
        ),
        (
            "Fold into a neat rectangle.",
            "Fold the long sides in, then fold the sheet in thirds or quarters until it matches the size of your other linens.",
        ),
    ],
    "How to Learn a New Language": [
        (
            "Start with the most common words.",
            "The thousand most frequent words cover most everyday conversation. Learn them with flashcards and spaced repetition.",
        ),
        (
            "Listen every day.",
            "Podcasts, songs and shows in the target language train your ear. Subtitles in the same language help connect sounds and spelling.",
        ),
        (
            "Speak early.",
            "Find a tutor or an exchange partner and talk from the first weeks, even with mistakes. Speaking reveals gaps that reading hides.",
        ),
        (
            "Study a little, often.",
            "Twenty minutes every day beats three hours once a week, because memory consolidates between sessions.",
        ),
    ],
    "How to Jump Start a Car": [
        (
            "Position the cars.",
            "Park the working car close to the one with the dead battery, without the cars touching, and turn both engines off.",
        ),
        (
            "Connect the red cable.",
            "Clamp one red lead to the positive terminal of the dead battery and the other to the positive terminal of the good battery.",
        ),
        (
            "Connect the black cable.",
            "Clamp one black lead to the negative terminal of the good battery and the other to bare metal on the engine block of the dead car, away from the battery.",
        ),
        (
            "Start and disconnect.",
            "Start the working car, wait a few minutes, then start the other car. Remove the cables in the reverse order and drive for at least twenty minutes to recharge.",
        ),
    ],
}

INTRO = "This article explains the steps in order. Read them all before you begin."
TIPS = "\n\nTips\nAsk a friend for help the first time.\n\nWarnings\nTake care."


def rows():
    for index, (title, steps) in enumerate(ARTICLES.items()):
        headline = "\n" + ",\n".join(headline for headline, _ in steps)
        body = "\n".join(f"{headline} {text}" for headline, text in steps)
        if index % 3 == 0:
            body = f"{INTRO}\n{body}"
        if index % 4 == 0:
            body += TIPS
        yield {"headline": headline, "title": title + ("1" if index % 5 == 0 else ""), "text": body}


if __name__ == "__main__":
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["headline", "title", "text"])
        writer.writeheader()
        writer.writerows(rows())
    print(OUT, OUT.stat().st_size)
