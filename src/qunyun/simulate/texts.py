"""Chinese message texts from small templates: cheap to generate, plausible to read."""

from __future__ import annotations

import random

from qunyun.simulate.catalogue import CATALOGUE

GREETINGS = ("大家好，新人报到！", "大家好～我是{city}的{name}，请多关照", "刚入群，来打个招呼", "哈喽各位骑友")
WELCOME_REPLIES = ("欢迎欢迎！", "欢迎新骑友～", "欢迎加入，周末一起骑", "👏欢迎")
CHAT = (
    "早上好，今天{city}天气不错，适合骑车",
    "今天骑了{km}公里，腿有点酸",
    "周末有人一起刷{place}吗？",
    "刚换了新外胎，路感好很多",
    "下班通勤骑了{km}公里，爽",
    "有没有推荐的{sku}？预算不高",
    "请问{sku}怎么调？",
    "晚上夜骑注意安全，车灯要亮",
    "今天逆风，均速只有{speed}",
    "这周打卡第{n}天",
    "分享一下今天的路线，风景很好",
    "求推荐{city}附近的骑行路线",
    "车店说链条该换了，大家多久换一次？",
    "上次活动的照片什么时候发呀",
    "同问",
    "哈哈哈哈",
    "收到，谢谢群主",
    "👍",
    "已下单，期待",
    "{sku}到货了，质量不错",
)
PUSH_REPLIES = ("打卡✅", "学到了", "这个活动我报名", "+1", "已参加", "好的，收到", "今天的话题不错")
PLACES = ("环湖", "山路", "滨江绿道", "环岛路", "香山", "莫干山", "青城山", "大梅沙")
SPAM = (
    ("link", "【限时】加V领200元无门槛券 http://t.cn/{code}"),
    ("link", "代购各大品牌骑行服，价格美丽，私聊 http://dg.example/{code}"),
    ("miniprogram", "点击小程序免费领骑行装备"),
    ("card", "推荐一个好友：兼职刷单日赚300"),
    ("link", "低价转让二手公路车，扫码看 http://2s.example/{code}"),
)
# msg_type of ordinary messages and their weights
MSG_TYPES = ("text", "image", "voice", "video", "link", "file", "other")
MSG_TYPE_WEIGHTS = (80, 12, 3, 2, 1.5, 0.5, 1)


def fill(rng: random.Random, template: str, *, city: str = "", name: str = "") -> str:
    if "{" not in template:
        return template
    return template.format(
        city=city,
        name=name,
        km=rng.randint(15, 120),
        place=rng.choice(PLACES),
        sku=rng.choice(CATALOGUE).name,
        speed=f"{rng.uniform(18, 32):.1f}",
        n=rng.randint(2, 30),
        code="".join(rng.choices("abcdefghjkmnpqrstuvwxyz23456789", k=6)),
    )
