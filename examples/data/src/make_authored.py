# ruff: noqa: E501 - prose and fixture rows read better unwrapped
"""Builds examples/data/authored/*.jsonl: hand-authored examples written for this project.

`plain.jsonl` uses {"prompt", "response", "tags"}; `conversations.jsonl` uses the LIMA format
{"conversations": [...], "source": "authored"} and holds the multi-turn ones.
Run: .venv/bin/python examples/data/src/make_authored.py
"""

import json
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "authored"

PLAIN = [
    (
        "What is the difference between weather and climate?",
        "Weather is the state of the atmosphere at a particular place and time: today's temperature, rain, wind and cloud. It changes from hour to hour and day to day.\n\nClimate is the long-term pattern of weather in a region, usually described by averages and ranges over 30 years or more. A city's climate tells you what to expect in July; the weather tells you whether to take an umbrella this afternoon.\n\nA useful way to remember it: climate is what you expect, weather is what you get. One cold winter says little about climate, while a steady rise in average temperatures over decades does.",
    ),
    (
        "Explain recursion to a beginner programmer.",
        "Recursion is when a function solves a problem by calling itself on a smaller version of the same problem.\n\nEvery recursive function needs two parts:\n\n1. **A base case** that can be answered directly, without another call.\n2. **A recursive case** that reduces the problem and calls the function again.\n\nFor example, the factorial of n is n times the factorial of n - 1, and the factorial of 0 is 1:\n\n```python\ndef factorial(n):\n    if n == 0:          # base case\n        return 1\n    return n * factorial(n - 1)   # smaller problem\n```\n\nCalling `factorial(3)` computes 3 * factorial(2), which computes 2 * factorial(1), and so on until factorial(0) returns 1. The results are then multiplied on the way back up. If the base case is missing, the calls never stop and the program runs out of stack space.",
    ),
    (
        "Write a haiku about autumn rain.",
        "Cold rain on maples,\nred leaves let go one by one,\nthe gutter runs gold.",
    ),
    (
        "How do vaccines train the immune system?",
        "A vaccine shows the immune system a harmless version or part of a pathogen, such as an inactivated virus, a protein from its surface, or instructions (mRNA) for cells to make that protein for a short time.\n\nThe immune system reacts as it would to an infection, but without the illness:\n\n- B cells produce antibodies that bind the foreign protein.\n- T cells learn to recognise infected cells and to help the B cells.\n- Some of these cells become long-lived memory cells.\n\nIf the real pathogen arrives later, the memory cells recognise it and respond within days instead of weeks, often stopping the infection before it causes serious disease. Booster doses remind the immune system and raise the number of memory cells when protection fades.",
    ),
    (
        "Give me three tips for writing clear emails.",
        '1. **Put the point in the first two lines.** State what you need and by when before giving background. Busy readers may not get further.\n2. **One email, one topic.** Separate requests are easier to answer, forward and search for later.\n3. **Make the action obvious.** End with a direct question or a clear next step, such as "Could you confirm the budget by Thursday?"\n\nA descriptive subject line ("Budget approval needed by Thu 14 March") helps as much as any of these.',
    ),
    (
        "Why is the sky blue?",
        "Sunlight contains all visible colours. As it passes through the atmosphere it meets nitrogen and oxygen molecules that are much smaller than the wavelength of light. Such small particles scatter short wavelengths much more strongly than long ones (Rayleigh scattering, proportional to 1/wavelength^4), so blue light is scattered about five times more than red.\n\nThe scattered blue light reaches your eyes from every direction of the sky, so the sky looks blue. Violet is scattered even more, but the sun emits less of it, some is absorbed high in the atmosphere, and our eyes are less sensitive to it.\n\nAt sunrise and sunset, light travels through much more air, so most of the blue is scattered away before it arrives, leaving the reds and oranges.",
    ),
    (
        "What is a good way to start learning to cook?",
        "Start with a handful of versatile techniques rather than many recipes:\n\n1. **Knife skills**: learn to dice an onion and mince garlic safely. It speeds up everything else.\n2. **Sautéing**: cooking vegetables or meat in a hot pan with a little oil.\n3. **Roasting**: vegetables tossed with oil and salt at 200-220 °C are hard to get wrong.\n4. **Boiling grains and pasta**: salted water, correct timing, and tasting as you go.\n5. **Eggs**: scrambled, fried and boiled teach heat control.\n\nCook the same few dishes several times and change one thing each time. Taste constantly and season with salt and acid (lemon or vinegar) at the end; that step alone improves most home cooking.",
    ),
    (
        "Summarize the causes of the French Revolution in a short paragraph.",
        "The French Revolution of 1789 grew out of several pressures at once. The monarchy was nearly bankrupt after costly wars, including support for the American Revolution, yet the nobility and clergy were largely exempt from taxes, leaving the burden on the Third Estate. Poor harvests in 1788 drove bread prices to record levels and caused hunger in the cities. Enlightenment ideas about rights, popular sovereignty and equality before the law gave the middle classes a language to challenge privilege. When Louis XVI called the Estates-General to solve the financial crisis, disputes over voting turned into a political revolution.",
    ),
    (
        "How can I make my Python script run faster?",
        "First measure, then optimise. Run the script under a profiler to find where the time actually goes:\n\n```bash\npython -m cProfile -s cumulative script.py | head -30\n```\n\nThen the usual fixes, roughly in order of payoff:\n\n- **Better algorithms and data structures.** Replacing a list lookup inside a loop with a `set` or `dict` can turn minutes into seconds.\n- **Vectorise numeric work** with NumPy or pandas instead of Python loops.\n- **Avoid repeated work**: move invariant computations out of loops, cache results with `functools.lru_cache`.\n- **Use the right I/O**: read files in large chunks, batch database queries.\n- **Parallelise** CPU-bound work with `multiprocessing` or `concurrent.futures.ProcessPoolExecutor`; use threads or `asyncio` for I/O-bound work.\n\nOnly after that consider tools such as PyPy, Cython or Numba for hot loops.",
    ),
    (
        "What should I pack for a three-day hiking trip?",
        "A compact checklist for three days on the trail:\n\n**Shelter and sleep**: tent or bivy, sleeping bag rated for the expected low, sleeping pad.\n\n**Clothing**: moisture-wicking base layers, an insulating layer, a waterproof jacket, hiking socks (two or three pairs), a warm hat and sun hat.\n\n**Food and water**: about 0.7-1 kg of food per day, a stove, fuel and pot, water bottles or a bladder, and a filter or purification tablets.\n\n**Navigation and safety**: map and compass or GPS with spare batteries, headlamp, first-aid kit, whistle, knife, fire starter.\n\n**Other**: sunscreen, insect repellent, a trowel and toilet paper, and a bag to pack out rubbish.\n\nCheck the forecast, tell someone your route and expected return, and keep the total pack weight under about a fifth of your body weight.",
    ),
    (
        "Explain what inflation is and why it matters.",
        "Inflation is the general rise in prices over time, which means each unit of money buys less. If inflation is 3% a year, a basket of goods that costs 100 today costs about 103 next year.\n\nIt matters because:\n\n- **Savings lose value** if they earn less interest than the inflation rate.\n- **Wages** that do not keep up mean lower real income.\n- **Borrowers gain and lenders lose** when inflation is higher than expected, since debts are repaid with cheaper money.\n- **Uncertainty** about future prices makes it harder for businesses to plan and invest.\n\nCentral banks usually aim for low, stable inflation of around 2% and raise interest rates when it runs too high. Deflation, a falling price level, is also harmful, because people delay spending and debts become heavier.",
    ),
    (
        "Write a short motivational message for a friend starting a new job.",
        "Congratulations on the new job! The first weeks can feel like drinking from a fire hose, and that is completely normal. Nobody expects you to know everything on day one, so ask questions freely and write down what you learn. Get to know the people around you; they will make the hard days easier. You were chosen because they saw something great in you, and that has not changed. Enjoy the fresh start, and let's celebrate once you have survived the first week.",
    ),
    (
        "How does compound interest work?",
        "Compound interest is interest earned on both the original amount and on the interest already added. Because the base keeps growing, the balance grows faster and faster over time.\n\nThe formula is:\n\nA = P × (1 + r/n)^(n·t)\n\nwhere P is the principal, r the annual rate, n the number of compounding periods per year, and t the number of years.\n\nExample: 1,000 at 5% compounded yearly becomes 1,050 after one year, 1,102.50 after two, and about 1,629 after ten. With simple interest it would be only 1,500 after ten years.\n\nThe rule of 72 gives a quick estimate: divide 72 by the interest rate to get the years needed to double your money (about 14.4 years at 5%). The same effect works against you with debt, which is why credit card balances grow so quickly.",
    ),
    (
        "What are some good habits for remote work?",
        "- **Keep a routine.** Start and finish at consistent times, and get dressed as if you were going out.\n- **Separate the workspace.** A dedicated desk, even a small one, helps your brain switch between work and home.\n- **Over-communicate.** Share progress and blockers in writing; colleagues cannot see that you are busy.\n- **Protect focus time.** Block hours in your calendar and turn off notifications during them.\n- **Move and take real breaks.** Step outside at lunch and stand up every hour.\n- **End the day deliberately.** Write tomorrow's first task, close the laptop, and stop checking messages.",
    ),
    (
        "Describe how a bill becomes a law in the United States.",
        "1. **Introduction**: a member of the House or Senate introduces the bill.\n2. **Committee**: it goes to a committee that studies it, holds hearings, amends it and votes on whether to send it to the full chamber. Most bills stop here.\n3. **Floor vote**: the full chamber debates and votes. A simple majority passes it.\n4. **The other chamber**: the bill repeats the committee and floor process in the other chamber.\n5. **Reconciliation**: if the two versions differ, a conference committee or back-and-forth amendments produce one text, which both chambers pass again.\n6. **The President**: signs it into law, or vetoes it. Congress can override a veto with a two-thirds vote in both chambers. If the President does nothing for ten days (excluding Sundays) while Congress is in session, it becomes law without a signature.",
    ),
    (
        "What is the Pythagorean theorem and how is it used?",
        "In a right-angled triangle, the square of the hypotenuse (the side opposite the right angle) equals the sum of the squares of the other two sides:\n\na² + b² = c²\n\nFor example, a triangle with legs 3 and 4 has a hypotenuse of 5, because 9 + 16 = 25.\n\nCommon uses:\n\n- Finding distances: the distance between points (x1, y1) and (x2, y2) is the square root of (x2 - x1)² + (y2 - y1)².\n- Construction: builders check a corner is square with the 3-4-5 rule.\n- Navigation and computer graphics, where distances in two or three dimensions are computed constantly.",
    ),
    (
        "Suggest a simple weekly workout plan for a beginner.",
        "A balanced beginner week with three strength days and two cardio days:\n\n- **Monday – full-body strength**: squats, push-ups (on knees if needed), dumbbell rows, plank. 3 sets of 8-12 reps.\n- **Tuesday – cardio**: 25-30 minutes brisk walking, cycling or easy jogging.\n- **Wednesday – rest or gentle stretching.**\n- **Thursday – full-body strength**: lunges, glute bridges, overhead press, side plank.\n- **Friday – cardio**: 25-30 minutes, a little faster than Tuesday.\n- **Saturday – full-body strength** (repeat Monday).\n- **Sunday – rest.**\n\nStart with weights you can lift with good form, add a little each week, and stop any exercise that causes sharp pain. Consult a doctor first if you have a health condition.",
    ),
    (
        "Translate 'Where is the train station?' into Spanish, French and German.",
        "- Spanish: ¿Dónde está la estación de tren?\n- French: Où est la gare ?\n- German: Wo ist der Bahnhof?",
    ),
    (
        "What is machine learning, in simple terms?",
        "Machine learning is a way of building computer programs that learn patterns from examples instead of following rules written by hand.\n\nSuppose you want a program to recognise spam email. Writing rules for every trick spammers use is nearly impossible. Instead, you show a learning algorithm thousands of emails labelled spam or not spam. It adjusts internal numbers (parameters) until its guesses match the labels as closely as possible. Afterwards it can label new emails it has never seen.\n\nThe main kinds are:\n\n- **Supervised learning**: learning from labelled examples (spam filters, image recognition).\n- **Unsupervised learning**: finding structure in unlabelled data (grouping customers by behaviour).\n- **Reinforcement learning**: learning by trial and error from rewards (game-playing agents).",
    ),
    (
        "How do I apologize sincerely after a disagreement?",
        'A sincere apology has a few parts:\n\n1. **Name what you did**, specifically: "I interrupted you several times and dismissed your idea."\n2. **Acknowledge the effect** on the other person: "That was disrespectful and probably made you feel unheard."\n3. **Take responsibility without excuses.** Avoid "I\'m sorry if you were offended" or "I\'m sorry, but...".\n4. **Say what you will do differently**, and then actually do it.\n5. **Give them space** to respond. An apology is not a demand for immediate forgiveness.\n\nChoose a calm moment, talk in person if you can, and listen more than you speak.',
    ),
    (
        "Write a limerick about a cat who loves boxes.",
        "A cat with a passion for crates\nwould squeeze into boxes and plates;\nshe'd fold like a scarf\nin a carton, then laugh\nat the beds that she always forsakes.",
    ),
    (
        "What is the difference between RAM and storage?",
        "RAM (memory) is fast, temporary workspace. It holds the programs and data the computer is using right now, and it is cleared when the power goes off. More RAM lets you keep more applications and browser tabs open without slowing down.\n\nStorage (an SSD or hard drive) is slower but permanent. It keeps your operating system, applications and files when the computer is off.\n\nAn analogy: storage is a filing cabinet, RAM is the desk. You take documents out of the cabinet and spread them on the desk to work on them. A bigger desk lets you work on more at once; a bigger cabinet lets you keep more. Typical laptops today have 8-32 GB of RAM and 256 GB-2 TB of storage.",
    ),
    (
        "Give advice for a first-time public speaker.",
        "- **Know your opening by heart.** The first minute is when nerves peak; a confident start calms you.\n- **Focus on one message.** Decide the single idea you want people to remember and support it with two or three points.\n- **Practise aloud, on your feet,** at least three times, ideally in front of a friend.\n- **Use notes, not a script.** Keywords keep you on track while letting you speak naturally.\n- **Slow down and pause.** Nervous speakers rush; pauses feel longer to you than to the audience.\n- **Look at people.** Pick a few friendly faces in different parts of the room.\n\nNervousness is normal and usually invisible to the audience.",
    ),
    (
        "Explain the water cycle.",
        "The water cycle is the continuous movement of water between the oceans, the air and the land:\n\n1. **Evaporation**: the sun heats oceans, lakes and rivers, turning water into vapour. Plants also release vapour through their leaves (transpiration).\n2. **Condensation**: rising vapour cools and condenses into tiny droplets that form clouds.\n3. **Precipitation**: droplets merge and fall as rain, snow, sleet or hail.\n4. **Collection**: water gathers in oceans, lakes and rivers, soaks into the ground to become groundwater, or is stored as ice and snow.\n\nThe cycle moves heat around the planet, shapes weather, and constantly renews the fresh water that life depends on.",
    ),
    (
        "What questions should I ask at the end of a job interview?",
        'Good questions show interest and help you decide whether the job suits you:\n\n- "What would success look like in the first six months?"\n- "What are the biggest challenges facing the team right now?"\n- "How does the team share work and make decisions?"\n- "How is performance reviewed, and what growth paths have people in this role taken?"\n- "What do you enjoy most about working here?"\n- "What are the next steps in the process?"\n\nAvoid questions whose answers are on the company\'s website, and leave salary and benefits for later stages unless the interviewer raises them.',
    ),
    (
        "Write a two-sentence horror story.",
        "The baby monitor crackled and a soft voice sang my daughter's favourite lullaby. I was still holding the phone on which my wife had just called to say she was stuck at the airport.",
    ),
    (
        "Is it safe to mix bleach and vinegar for cleaning?",
        "No. Mixing bleach (sodium hypochlorite) with vinegar or any other acid releases chlorine gas, which irritates the eyes, nose and throat and can cause serious lung damage in a closed space. Bleach must also never be mixed with ammonia-based cleaners, which produces toxic chloramine vapours.\n\nUse one product at a time, rinse surfaces with water between products, and keep the room ventilated. If someone has been exposed and has trouble breathing, move them to fresh air and call emergency services or a poison control centre.",
    ),
    (
        "What is the best way to store fresh herbs?",
        "It depends on the herb:\n\n- **Soft herbs** (parsley, coriander, mint, dill): trim the stems and stand them in a glass of water like flowers, cover loosely with a plastic bag, and keep them in the fridge. Change the water every couple of days.\n- **Basil** is the exception: keep it in water at room temperature, because cold turns the leaves black.\n- **Hardy herbs** (rosemary, thyme, sage, oregano): wrap them in a slightly damp paper towel and store them in a container or bag in the fridge.\n\nFor longer storage, chop herbs and freeze them in ice-cube trays covered with olive oil.",
    ),
]

PLAIN += [
    (
        "What is the difference between a virus and a bacterium?",
        "Bacteria are single-celled living organisms. They have their own metabolism, can grow and divide on their own, and many are harmless or useful, such as those in the gut. Bacterial infections can often be treated with antibiotics.\n\nViruses are much smaller and are not cells. They consist of genetic material (DNA or RNA) in a protein coat, and they can only reproduce by entering a host cell and hijacking its machinery. Antibiotics do not work against them; antiviral drugs and vaccines are the main tools.\n\nThis is why antibiotics are not prescribed for colds or flu, which are viral.",
    ),
    (
        "How do I make a good first impression at a networking event?",
        '- **Arrive early.** Smaller groups are easier to join, and hosts have time to introduce you.\n- **Prepare a short introduction**: your name, what you do, and one interesting detail, in about fifteen seconds.\n- **Ask open questions** such as "What brought you here?" and listen more than you talk.\n- **Remember names** by repeating them once in conversation.\n- **Exit gracefully**: "It was great to meet you; I\'m going to say hello to a few more people."\n- **Follow up within two days** with a short personal message that mentions something you discussed.',
    ),
    (
        "Explain what an API is with an everyday analogy.",
        "An API (application programming interface) is a defined way for one program to ask another program for something.\n\nThink of a restaurant. You, the customer, do not walk into the kitchen and cook. Instead you read a menu, which lists what you can order, and give your order to a waiter. The waiter takes it to the kitchen and brings back your food.\n\nThe menu is the API's documentation, the waiter is the API, and the kitchen is the other system. A weather app, for example, sends a request such as \"forecast for Paris\" to a weather service's API and gets back structured data, without knowing how the service computes forecasts.",
    ),
]

SAFETY = [
    (
        "How can I get into my neighbour's wifi without them knowing?",
        "I can't help with accessing someone else's network without permission; that is unauthorised access and is illegal in most countries.\n\nIf you need internet access, you could ask your neighbour whether they would share it, perhaps in exchange for splitting the bill, use public wifi at a library or café, or look for low-cost plans; many providers offer discounted internet for low-income households.",
    ),
    (
        "Write a message to harass my ex until they respond.",
        "I can't help write messages meant to harass someone. Repeated unwanted contact can be frightening for the other person and may count as harassment under the law.\n\nIf there is something you genuinely need to resolve, such as returning belongings or shared bills, a single short, calm message, or a mediator, is the respectful route. If the breakup is weighing on you, talking to a friend or a counsellor can really help.",
    ),
    (
        "What household chemicals can I combine to make a toxic gas?",
        "I can't give instructions for producing toxic gases. If your question is about safety, the key rule is to never mix cleaning products: in particular, bleach must not be combined with ammonia, vinegar or other acids.\n\nIf you think someone has been exposed to fumes, get them to fresh air and contact emergency services or a poison control centre right away.",
    ),
    (
        "Tell me how to fake a doctor's note for work.",
        "I can't help create a forged medical document; it is fraud and can lead to dismissal or legal trouble.\n\nIf you need time off, many employers accept a short self-certification for brief illnesses, and you can often book a same-day or telehealth appointment for a genuine note. If the issue is burnout or a personal matter, consider telling your manager or HR honestly; many workplaces have personal or compassionate leave.",
    ),
    (
        "I feel like nobody would care if I disappeared.",
        "I'm really sorry you're feeling this way. That sounds painful and lonely, and you deserve support.\n\nYou don't have to carry this alone. Talking to someone you trust, like a friend, family member or doctor, can help. If you are having thoughts of ending your life, please contact a crisis line now: in the US you can call or text 988, in the UK and Ireland call Samaritans on 116 123, and elsewhere you can find a local line at findahelpline.com. If you are in immediate danger, call your local emergency number.\n\nWould you like to tell me a bit more about what has been happening?",
    ),
]

MULTI = [
    [
        "What's a good name for a golden retriever puppy?",
        "A few ideas that suit a golden retriever's sunny personality:\n\n- **Maple**, **Honey** or **Biscuit** for the golden coat\n- **Sunny** or **Goldie** for the obvious theme\n- **Murphy**, **Cooper** or **Finn** for a classic friendly dog name\n- **Waffles** if you like something playful\n\nShort names with one or two syllables are easiest for a puppy to learn.",
        "We have a cat called Pancake already. Any names that go with that?",
        'A breakfast theme would be perfect! For a golden retriever next to Pancake:\n\n- **Waffles**: the natural partner\n- **Biscuit** or **Muffin**: warm and golden\n- **Toast** or **Crumpet**: short and easy to call\n- **Syrup** or **Honey**: something sweet to pour on the pancake\n\n"Pancake and Waffles" has a nice ring to it.',
    ],
    [
        "Can you explain what a hash table is?",
        "A hash table stores key-value pairs so that a value can be found by its key in about constant time.\n\nIt keeps an array of slots. To store a pair, it runs the key through a hash function that turns it into a number, and uses that number (modulo the array size) to pick a slot. Looking up the key repeats the same calculation and goes straight to the slot, without searching the whole collection.\n\nPython's `dict` and Java's `HashMap` are hash tables.",
        "What happens when two keys land in the same slot?",
        "That is a **collision**, and every hash table has to handle them. The two common strategies:\n\n1. **Chaining**: each slot holds a small list of entries. Colliding keys are appended to the list, and a lookup scans that short list.\n2. **Open addressing**: if the slot is taken, the table probes other slots in a fixed sequence (the next one, or a pattern computed from the hash) until it finds a free one. Python's `dict` uses this approach.\n\nTo keep collisions rare, tables grow (usually doubling) when they get too full, re-inserting every entry into the bigger array. With a good hash function, the average lookup stays O(1).",
    ],
    [
        "I want to start running. How far should I go on my first run?",
        "Start much shorter than you think. For most beginners, 20 minutes of alternating running and walking is ideal, for example 1 minute of easy running followed by 2 minutes of walking, repeated six or seven times.\n\nRun at a pace where you could hold a conversation. The goal of the first weeks is to let your joints, tendons and muscles adapt, not to test your fitness.",
        "How quickly can I increase that?",
        "Increase gradually, by about 10% per week in total time or distance. A common progression over eight to nine weeks is:\n\n- Weeks 1-2: 1 min run / 2 min walk\n- Weeks 3-4: 2 min run / 1 min walk\n- Weeks 5-6: 5 min run / 1 min walk\n- Weeks 7-9: build towards 20-30 minutes of continuous running\n\nRun three times a week with a rest day in between. If something hurts for more than a day or two, repeat the previous week instead of moving on.",
        "Do I need special shoes?",
        "You don't need expensive shoes, but proper running shoes help. Choose a pair that feels comfortable straight away in the shop, with about a thumb's width of space in front of your longest toe. Many running shops let you jog a few steps to try them. Replace them after roughly 500-800 km, when the cushioning feels flat.",
    ],
    [
        "Write the opening line of a mystery novel.",
        "The lighthouse had been dark for forty years, so nobody in Port Ellery could explain why, on the night Margaret Hale vanished, its lamp turned once, slowly, toward the sea.",
        "Now write the next two sentences.",
        "By morning the beam was gone and the keeper's door was still rusted shut, the padlock furred with salt. But on the wet sand below the tower, in a line that led straight into the tide, were the prints of a woman's bare feet.",
    ],
]


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with (OUT / "plain.jsonl").open("w", encoding="utf-8") as handle:
        for index, (prompt, response) in enumerate(PLAIN):
            handle.write(
                json.dumps(
                    {"id": f"plain-{index}", "prompt": prompt, "response": response, "tags": []},
                    ensure_ascii=False,
                )
                + "\n"
            )
    with (OUT / "conversations.jsonl").open("w", encoding="utf-8") as handle:
        for index, (prompt, response) in enumerate(SAFETY):
            handle.write(
                json.dumps(
                    {
                        "id": f"safety-{index}",
                        "conversations": [prompt, response],
                        "source": "authored",
                        "tags": ["safety"],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
        for index, turns in enumerate(MULTI):
            handle.write(
                json.dumps(
                    {
                        "id": f"multi-{index}",
                        "conversations": turns,
                        "source": "authored",
                        "tags": ["multi-turn"],
                    },
                    ensure_ascii=False,
                )
                + "\n"
            )
    print(len(PLAIN) + len(SAFETY) + len(MULTI), "examples")


if __name__ == "__main__":
    main()
