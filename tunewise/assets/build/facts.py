"""Fact tables the tiny base model learns in pretraining (and the retention suite tests).

Plain data, hand-written for this project.  Chinese names are given where a Chinese
question is asked about the same fact.
"""

from __future__ import annotations

# (country, capital, country in Chinese, capital in Chinese)
CAPITALS = [
    ("France", "Paris", "法国", "巴黎"),
    ("Germany", "Berlin", "德国", "柏林"),
    ("Italy", "Rome", "意大利", "罗马"),
    ("Spain", "Madrid", "西班牙", "马德里"),
    ("Portugal", "Lisbon", "葡萄牙", "里斯本"),
    ("Japan", "Tokyo", "日本", "东京"),
    ("China", "Beijing", "中国", "北京"),
    ("India", "New Delhi", "印度", "新德里"),
    ("Russia", "Moscow", "俄罗斯", "莫斯科"),
    ("Egypt", "Cairo", "埃及", "开罗"),
    ("Kenya", "Nairobi", "肯尼亚", "内罗毕"),
    ("Canada", "Ottawa", "加拿大", "渥太华"),
    ("Mexico", "Mexico City", "墨西哥", "墨西哥城"),
    ("Brazil", "Brasilia", "巴西", "巴西利亚"),
    ("Argentina", "Buenos Aires", "阿根廷", "布宜诺斯艾利斯"),
    ("Peru", "Lima", "秘鲁", "利马"),
    ("Chile", "Santiago", "智利", "圣地亚哥"),
    ("Australia", "Canberra", "澳大利亚", "堪培拉"),
    ("Greece", "Athens", "希腊", "雅典"),
    ("Turkey", "Ankara", "土耳其", "安卡拉"),
    ("Poland", "Warsaw", "波兰", "华沙"),
    ("Austria", "Vienna", "奥地利", "维也纳"),
    ("Sweden", "Stockholm", "瑞典", "斯德哥尔摩"),
    ("Norway", "Oslo", "挪威", "奥斯陆"),
    ("Finland", "Helsinki", "芬兰", "赫尔辛基"),
    ("Denmark", "Copenhagen", "丹麦", "哥本哈根"),
    ("Ireland", "Dublin", "爱尔兰", "都柏林"),
    ("the Netherlands", "Amsterdam", "荷兰", "阿姆斯特丹"),
    ("Belgium", "Brussels", "比利时", "布鲁塞尔"),
    ("Switzerland", "Bern", "瑞士", "伯尔尼"),
    ("Thailand", "Bangkok", "泰国", "曼谷"),
    ("Vietnam", "Hanoi", "越南", "河内"),
    ("South Korea", "Seoul", "韩国", "首尔"),
    ("Indonesia", "Jakarta", "印度尼西亚", "雅加达"),
    ("Iran", "Tehran", "伊朗", "德黑兰"),
    ("Cuba", "Havana", "古巴", "哈瓦那"),
    ("Hungary", "Budapest", "匈牙利", "布达佩斯"),
    ("the Czech Republic", "Prague", "捷克", "布拉格"),
    ("Morocco", "Rabat", "摩洛哥", "拉巴特"),
    ("Nigeria", "Abuja", "尼日利亚", "阿布贾"),
    ("the United Kingdom", "London", "英国", "伦敦"),
]

# (thing, colour, thing in Chinese or None, colour in Chinese)
COLOURS = [
    ("the sky", "blue", "天空", "蓝色"),
    ("grass", "green", "草", "绿色"),
    ("snow", "white", "雪", "白色"),
    ("coal", "black", "煤", "黑色"),
    ("a banana", "yellow", "香蕉", "黄色"),
    ("blood", "red", "血", "红色"),
    ("a strawberry", "red", "草莓", "红色"),
    ("a lemon", "yellow", "柠檬", "黄色"),
    ("milk", "white", "牛奶", "白色"),
    ("a carrot", "orange", "胡萝卜", "橙色"),
    ("a tomato", "red", "西红柿", "红色"),
    ("a crow", "black", "乌鸦", "黑色"),
    ("a leaf", "green", "树叶", "绿色"),
    ("the sea", "blue", "大海", "蓝色"),
    ("chocolate", "brown", "巧克力", "棕色"),
    ("an elephant", "grey", "大象", "灰色"),
    ("a frog", "green", "青蛙", "绿色"),
    ("a cloud", "white", "云", "白色"),
    ("a plum", "purple", "李子", "紫色"),
    ("a pumpkin", "orange", "南瓜", "橙色"),
    ("a flamingo", "pink", "火烈鸟", "粉色"),
    ("soil", "brown", "泥土", "棕色"),
    ("a mouse", "grey", "老鼠", "灰色"),
    ("a cherry", "red", None, "红色"),
    ("a lime", "green", None, "绿色"),
    ("a violet", "purple", None, "紫色"),
    ("a pig", "pink", None, "粉色"),
    ("ink", "black", None, "黑色"),
    ("a sapphire", "blue", None, "蓝色"),
    ("a polar bear", "white", None, "白色"),
    ("ash", "grey", None, "灰色"),
    ("an emerald", "green", None, "绿色"),
    ("a ruby", "red", None, "红色"),
    ("a chick", "yellow", None, "黄色"),
    ("a walnut", "brown", None, "棕色"),
    ("an aubergine", "purple", None, "紫色"),
]

# (animal, sound)
SOUNDS = [
    ("a dog", "woof"), ("a cat", "meow"), ("a cow", "moo"), ("a sheep", "baa"),
    ("a duck", "quack"), ("a pig", "oink"), ("a horse", "neigh"), ("a lion", "roar"),
    ("an owl", "hoot"), ("a snake", "hiss"), ("a bee", "buzz"), ("a frog", "croak"),
    ("a hen", "cluck"), ("a wolf", "howl"), ("a mouse", "squeak"), ("a goose", "honk"),
    ("a crow", "caw"), ("a dove", "coo"), ("a turkey", "gobble"), ("a donkey", "hee-haw"),
]

# (animal, number of legs)
LEGS = [
    ("a spider", 8), ("an ant", 6), ("a bee", 6), ("a beetle", 6), ("a dog", 4), ("a cat", 4),
    ("a horse", 4), ("a cow", 4), ("a lizard", 4), ("an elephant", 4), ("a bird", 2),
    ("a chicken", 2), ("a duck", 2), ("a person", 2), ("a crab", 10), ("an octopus", 8),
    ("a snake", 0), ("a fish", 0), ("a kangaroo", 2), ("a mouse", 4),
]

# (animal, young)
BABIES = [
    ("a dog", "puppy"), ("a cat", "kitten"), ("a cow", "calf"), ("a sheep", "lamb"),
    ("a horse", "foal"), ("a pig", "piglet"), ("a duck", "duckling"), ("a goat", "kid"),
    ("a frog", "tadpole"), ("a bear", "cub"), ("a hen", "chick"), ("a kangaroo", "joey"),
    ("a deer", "fawn"), ("a swan", "cygnet"), ("a goose", "gosling"), ("an owl", "owlet"),
]

# (animal, home)
HOMES = [
    ("a bird", "nest"), ("a bee", "hive"), ("a spider", "web"), ("a rabbit", "burrow"),
    ("a horse", "stable"), ("a pig", "sty"), ("a dog", "kennel"), ("a fox", "den"),
    ("an ant", "anthill"), ("a fish", "pond"), ("a cow", "barn"), ("a beaver", "lodge"),
]

OPPOSITES = [
    ("hot", "cold"), ("big", "small"), ("up", "down"), ("day", "night"), ("fast", "slow"),
    ("happy", "sad"), ("open", "closed"), ("wet", "dry"), ("old", "young"), ("long", "short"),
    ("full", "empty"), ("high", "low"), ("early", "late"), ("hard", "soft"), ("loud", "quiet"),
    ("thick", "thin"), ("strong", "weak"), ("rich", "poor"), ("in", "out"), ("left", "right"),
    ("black", "white"), ("push", "pull"), ("win", "lose"), ("buy", "sell"), ("first", "last"),
    ("near", "far"), ("clean", "dirty"), ("sweet", "sour"), ("north", "south"), ("east", "west"),
]

# (shape, number of sides)
SHAPES = [
    ("a triangle", 3), ("a square", 4), ("a rectangle", 4), ("a pentagon", 5),
    ("a hexagon", 6), ("a heptagon", 7), ("an octagon", 8), ("a circle", 0),
]

DAYS = ["Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"]
DAYS_ZH = ["星期一", "星期二", "星期三", "星期四", "星期五", "星期六", "星期日"]
MONTHS = [
    "January", "February", "March", "April", "May", "June", "July", "August",
    "September", "October", "November", "December",
]

# (how many ... , in ..., answer): "How many days are in a week?" / "A week has 7 days."
UNITS = [
    ("days", "a week", 7), ("months", "a year", 12), ("hours", "a day", 24),
    ("minutes", "an hour", 60), ("seconds", "a minute", 60), ("eggs", "a dozen", 12),
    ("days", "a year", 365), ("weeks", "a year", 52), ("fingers", "a hand", 5),
    ("years", "a century", 100), ("players", "a football team", 11), ("wheels", "a bicycle", 2),
]

NUMBER_WORDS = [
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen",
    "nineteen", "twenty",
]
