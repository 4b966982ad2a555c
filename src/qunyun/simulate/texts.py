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
# What spammers post, by kind, as (msg_type, template): written so that the default moderation
# policy (moderation/default_words.txt, the contact, links and flood rules) catches them, each
# evading a little (spaces, full-width letters, symbols between characters, disguised names) so
# that the matcher's normalization shows. "ad": side jobs, rebates and links; "contact": contact
# solicitation (phone numbers, WeChat ids, 加我微信); "flood": one text posted FLOOD_BURST times in
# a row (the flood rule's identical messages; the text itself is clean).
SPAM: dict[str, tuple[tuple[str, str], ...]] = {
    "ad": (
        ("link", "【限时】兼 职 刷 单，日赚 300 详情 http://t.cn/{code}"),
        ("link", "代购各大品牌骑行服，高仿名表也有，私聊 http://dg-shop.top/{code}"),
        ("miniprogram", "点击小程序 免费领取红包，骑行装备 0 元购"),
        ("card", "推荐一个好友：刷单返利，躺赚不用出门"),
        ("text", "宝妈学生党在家赚钱，ｒｉ　ｊｉｅ兼职，日结兼职当天到账"),
        ("link", "低价转让二手公路车，扫码领红包再减 100：www.2shou-bike.xyz/{code}"),
        ("text", "诚招代理！一件代发，零投资高回报，名额有限"),
    ),
    "contact": (
        ("text", "骑行服工厂直销，比店里便宜一半，加我 V 信 qiji{digits} 看图"),
        ("text", "有需要碳纤维轮组的➕薇信：bike_{digits}，原厂正品"),
        ("text", "二手码表出，电话 1{phone}"),
        ("text", "想瘦的姐妹加 w x 私聊，包瘦 20 斤"),
        ("text", "组团买装备更便宜，vx 同号 1{phone}，拉你进内部群"),
    ),
    "flood": (
        ("text", "求助力！帮我点一下，就差最后一个了🙏"),
        ("text", "拜托大家投我一票，第 {n} 号，谢谢谢谢"),
        ("text", "这个群怎么没人说话？？？"),
    ),
}
SPAM_KINDS = tuple(SPAM)
FLOOD_BURST = 3  # identical messages in a row: the default flood rule fires on the third
# What ordinary members share as links (msg_type link): articles, routes and videos on sites a
# brand's policy allows (SHARED_DOMAINS, the demo policy's allowed domains).
SHARED_LINKS = (
    "分享一篇骑行攻略 https://mp.weixin.qq.com/s/{code}",
    "今天的路线轨迹 https://www.imxingzhe.com/xing/{n}",
    "这个调车视频讲得清楚 https://b23.tv/{code}",
    "官方公众号的新品介绍 https://mp.weixin.qq.com/s/{code}",
)
SHARED_DOMAINS = ("mp.weixin.qq.com", "imxingzhe.com", "b23.tv")
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
        digits=rng.randint(100, 9999),
        phone=f"{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}",
    )


SHOWOFF = "晒单：新装备到手，开心！"


def ordinary_texts(names: tuple[str, ...] = ()) -> list[str]:
    """Every text an ordinary member may post, each template with every value of its placeholder
    (cities, places, SKUs, the whole ranges of numbers; a few random link codes) and greetings
    with every city and each of ``names``: what a moderation policy must let through."""
    from qunyun.simulate.personas import REGIONS

    cities = [city for _, (_, towns) in REGIONS.items() for city in towns]
    rng = random.Random(0)
    values: dict[str, list[str]] = {
        "city": cities,
        "km": [str(k) for k in range(15, 121)],
        "place": list(PLACES),
        "sku": [s.name for s in CATALOGUE],
        "speed": [f"{x / 10:.1f}" for x in range(180, 321)],
        "n": [str(n) for n in range(2, 31)],
        "code": ["".join(rng.choices("abcdefghjkmnpqrstuvwxyz23456789", k=6)) for _ in range(20)],
    }
    out: list[str] = [SHOWOFF]
    for template in (*CHAT, *GREETINGS, *WELCOME_REPLIES, *PUSH_REPLIES, *SHARED_LINKS):
        keys = [key for key in values if "{" + key + "}" in template]
        if "{name}" in template:
            out += [template.format(city=c, name=n) for c in cities for n in names or ("骑友",)]
        elif not keys:
            out.append(template)
        else:
            for key in keys:
                out += [template.format(**{**{k: values[k][0] for k in keys}, key: v}) for v in values[key]]
    return list(dict.fromkeys(out))
