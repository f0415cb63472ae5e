"""Make the blank forms (空白表格), filled-in samples (样表) and 示例图 the catalogue links to.

    .venv/bin/python tools/make_material_forms.py

Writes static/forms/*.pdf and static/samples/*.png. The PDFs embed a subset of a TrueType
CJK font (WenQuanYi, as bureau/licence.py uses), so each stays a few tens of KB; the
pictures are drawn, with made-up names only, and stored as palette PNGs. They are files
people download on purpose, outside the page budget (which counts HTML, CSS and JS).
"""

from __future__ import annotations

from pathlib import Path

from PIL import Image, ImageDraw, ImageFont
from reportlab.lib.colors import HexColor
from reportlab.lib.pagesizes import A4
from reportlab.lib.styles import ParagraphStyle
from reportlab.lib.units import mm
from reportlab.pdfbase import pdfmetrics
from reportlab.pdfbase.ttfonts import TTFont
from reportlab.platypus import Paragraph, SimpleDocTemplate, Spacer, Table, TableStyle

ROOT = Path(__file__).resolve().parent.parent
FORMS = ROOT / "static" / "forms"
SAMPLES = ROOT / "static" / "samples"
FONT_FILE = "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc"
AUTHORITY = "常州市武进区行政审批局"
FOOTER = f"格式文本，供参考；以受理窗口或江苏政务服务网公布的最新版本为准。{AUTHORITY}"
BLANK = "＿" * 12
SAMPLE_RED = HexColor("#c0392b")

pdfmetrics.registerFont(TTFont("CJK", FONT_FILE, subfontIndex=0))
TITLE = ParagraphStyle("title", fontName="CJK", fontSize=18, leading=26, alignment=1)
BODY = ParagraphStyle("body", fontName="CJK", fontSize=11, leading=20, wordWrap="CJK")
CELL = ParagraphStyle("cell", fontName="CJK", fontSize=10, leading=15, wordWrap="CJK")
SMALL = ParagraphStyle("small", parent=BODY, fontSize=8.5, leading=12, textColor=HexColor("#555"))


def _page(sample: bool):
    def draw(canvas, doc):
        canvas.saveState()
        canvas.setFont("CJK", 8)
        canvas.setFillColor(HexColor("#555555"))
        canvas.drawString(20 * mm, 12 * mm, FOOTER)
        if sample:
            # A sample must never pass for a filled-in original.
            canvas.setFillColor(SAMPLE_RED)
            canvas.setFillAlpha(0.18)
            canvas.setFont("CJK", 110)
            canvas.translate(A4[0] / 2, A4[1] / 2)
            canvas.rotate(35)
            canvas.drawCentredString(0, -40, "样表")
            canvas.setFillAlpha(1)
        canvas.restoreState()

    return draw


def _grid(rows, widths, *, header=False):
    table = Table(
        [[c if not isinstance(c, str) else Paragraph(c, CELL) for c in row] for row in rows],
        colWidths=[w * mm for w in widths],
    )
    style = [
        ("GRID", (0, 0), (-1, -1), 0.6, HexColor("#333333")),
        ("VALIGN", (0, 0), (-1, -1), "MIDDLE"),
        ("TOPPADDING", (0, 0), (-1, -1), 5),
        ("BOTTOMPADDING", (0, 0), (-1, -1), 5),
    ]
    if header:
        style.append(("BACKGROUND", (0, 0), (-1, 0), HexColor("#eeeeee")))
    table.setStyle(TableStyle(style))
    return table


def _sign(*who: str):
    """Signature lines side by side, each with its date under it (Paragraph folds spaces)."""
    cells = [Paragraph(f"{w}：", BODY) for w in who]
    dates = [
        Paragraph(
            "年" + "&nbsp;" * 6 + "月" + "&nbsp;" * 6 + "日",
            ParagraphStyle("d", parent=BODY, alignment=2),
        )
        for _ in who
    ]
    table = Table([cells, [""] * len(who), dates], colWidths=[170 * mm / len(who)] * len(who))
    table.setStyle(
        TableStyle(
            [("ROWBACKGROUNDS", (0, 0), (-1, -1), [None]), ("TOPPADDING", (0, 1), (-1, 1), 18)]
        )
    )
    return table


def _write(name: str, title: str, story: list, *, sample: bool = False) -> None:
    path = FORMS / name
    doc = SimpleDocTemplate(
        str(path),
        pagesize=A4,
        leftMargin=20 * mm,
        rightMargin=20 * mm,
        topMargin=20 * mm,
        bottomMargin=20 * mm,
        title=title + ("（样表）" if sample else ""),
        author=AUTHORITY,
    )
    page = _page(sample)
    doc.build(
        [Paragraph(title, TITLE), Spacer(1, 6 * mm), *story], onFirstPage=page, onLaterPages=page
    )
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


def _v(value: str, sample: bool, blank: str = BLANK) -> str:
    """A filled-in value on the 样表, a line to write on in the blank form."""
    return f'<font color="#1a4fa0">{value}</font>' if sample else blank


def power_of_attorney(sample: bool) -> None:
    def v(x, blank=BLANK):
        return _v(x, sample, blank)

    box = "■" if sample else "□"
    story = [
        Paragraph(f"委托人（单位名称或姓名）：{v('常州市武进区湖塘镇示例餐饮有限公司')}", BODY),
        Paragraph(f"统一社会信用代码或公民身份号码：{v('91320412XXXXXXXXXX')}", BODY),
        Paragraph(f"法定代表人（负责人）：{v('王某某')}　联系电话：{v('0519-8XXXXXXX')}", BODY),
        Paragraph(
            f"受托人（经办人）姓名：{v('李某某')}　公民身份号码：{v('320412XXXXXXXXXXXX')}", BODY
        ),
        Paragraph(f"受托人联系电话：{v('139XXXXXXXX')}", BODY),
        Spacer(1, 3 * mm),
        Paragraph(
            f"现委托受托人代表委托人向{AUTHORITY}办理{v('食品经营许可（新办）')}事项，委托权限如下：",
            BODY,
        ),
        Paragraph(f"{box} 提交、补正、补交申请材料　{box} 核对、修改申请信息", BODY),
        Paragraph(
            f"{box} 签收审批过程中的有关文书　{'□'} 领取审批决定书及证照　□ 其他：{BLANK}", BODY
        ),
        Paragraph(
            f"委托期限：自 {v('2027', '＿＿＿')} 年 {v('3', '＿＿')} 月 {v('1', '＿＿')} 日至 "
            f"{v('2027', '＿＿＿')} 年 {v('6', '＿＿')} 月 {v('30', '＿＿')} 日。",
            BODY,
        ),
        Spacer(1, 3 * mm),
        Paragraph(
            "委托人对受托人在上述权限内提交的材料和作出的行为承担法律责任。受托人不得转委托。", BODY
        ),
        Spacer(1, 12 * mm),
        _sign("委托人（签字或盖章）", "受托人（签字）"),
        Spacer(1, 8 * mm),
        Paragraph(
            "附：受托人身份证正反面复印件或照片（网上申报的，受托人实名认证后可不提交）。", SMALL
        ),
    ]
    name = "shouquan-weituoshu" + ("-yangbiao" if sample else "") + ".pdf"
    _write(name, "授权委托书", story, sample=sample)


def getihu_application(sample: bool) -> None:
    def v(x):
        return _v(x, sample) if sample else ""

    box = "■" if sample else "□"
    rows = [
        ["个体工商户名称", v("武进区湖塘某某小吃店"), "（无字号的可不填）", ""],
        ["经营者姓名", v("张某某"), "公民身份号码", v("320412XXXXXXXXXXXX")],
        ["联系电话", v("139XXXXXXXX"), "电子邮箱", v("无")],
        ["经营场所", v("常州市武进区湖塘镇某某路X号"), "", ""],
        ["组成形式", f"{box} 个人经营　□ 家庭经营", "从业人数", v("3")],
        ["资金数额（万元）", v("5"), "经营场所面积（㎡）", v("40")],
        ["经营范围", v("小餐饮（不含生食类食品制售）"), "", ""],
    ]
    table = _grid(rows, [36, 54, 34, 46])
    table.setStyle(
        TableStyle([("SPAN", (1, 3), (3, 3)), ("SPAN", (1, 6), (3, 6)), ("SPAN", (2, 0), (3, 0))])
    )
    story = [
        table,
        Spacer(1, 6 * mm),
        Paragraph(
            "本人承诺：所提交的材料真实、合法、有效，复印件与原件一致，经营场所依法可以用于经营；"
            "如有不实，愿意承担相应的法律责任。",
            BODY,
        ),
        Spacer(1, 12 * mm),
        _sign("经营者（签字）"),
    ]
    name = "getihu-dengji-shenqingshu" + ("-yangbiao" if sample else "") + ".pdf"
    _write(name, "个体工商户登记（备案）申请书", story, sample=sample)


def public_place_hygiene() -> None:
    rows = [
        ["单位名称", "", "统一社会信用代码", ""],
        ["法定代表人（负责人）", "", "联系电话", ""],
        ["经营地址", "", "", ""],
        ["场所类别", "□ 住宿　□ 沐浴　□ 美容美发　□ 游泳　□ 其他：", "", ""],
        ["营业面积（㎡）", "", "从业人员数", ""],
        ["持健康合格证明人数", "", "卫生管理人员", ""],
        ["集中空调通风系统", "□ 有　□ 无", "申请类型", "□ 新办"],
    ]
    table = _grid(rows, [38, 52, 34, 46])
    table.setStyle(TableStyle([("SPAN", (1, 2), (3, 2)), ("SPAN", (1, 3), (3, 3))]))
    story = [
        table,
        Spacer(1, 6 * mm),
        Paragraph(
            "申请单位承诺：以上填写内容及所附材料真实有效；场所卫生条件符合《公共场所卫生管理条例》"
            "及其实施细则的要求，并自觉接受卫生监督。",
            BODY,
        ),
        Spacer(1, 12 * mm),
        _sign("申请单位（盖章）", "法定代表人（签字）"),
    ]
    _write("gonggong-changsuo-weisheng-xuke-shenqingbiao.pdf", "公共场所卫生许可申请表", story)


def eldercare_commitment() -> None:
    points = [
        "按照建筑、消防、食品安全、医疗卫生、特种设备等法律、法规和强制性标准开展服务活动；",
        "与入住老年人或者其代理人签订服务协议，明确双方的权利和义务；",
        "配备与服务相适应的管理人员和专业技术人员，从业人员依法持证上岗；",
        "建立健全安全、消防、卫生、财务、档案等管理制度，并接受民政部门的指导和监督；",
        "如实报送备案信息，信息发生变更的，及时办理变更备案。",
    ]
    story = [
        Paragraph(f"养老机构名称：{BLANK}{BLANK}", BODY),
        Paragraph(f"服务场所地址：{BLANK}{BLANK}", BODY),
        Paragraph(f"法定代表人（负责人）：{BLANK}　联系电话：{BLANK}", BODY),
        Spacer(1, 4 * mm),
        Paragraph("本机构郑重承诺：", BODY),
        *[Paragraph(f"{i}．{p}", BODY) for i, p in enumerate(points, 1)],
        Paragraph("如违反上述承诺，愿意承担相应的法律责任。", BODY),
        Spacer(1, 14 * mm),
        _sign("养老机构（盖章）", "法定代表人（签字）"),
    ]
    _write("yanglao-jigou-beian-chengnuoshu.pdf", "养老机构备案承诺书", story)


def entertainment_declaration() -> None:
    story = [
        Paragraph("本人郑重声明：本人不具有《娱乐场所管理条例》第五条所列下列情形之一：", BODY),
        Paragraph(
            "（一）曾犯有组织、强迫、引诱、容留、介绍卖淫罪，制作、贩卖、传播淫秽物品罪，"
            "走私、贩卖、运输、制造毒品罪，强奸罪，强制猥亵、侮辱妇女罪，赌博罪，洗钱罪，"
            "组织、领导、参加黑社会性质组织罪的；",
            BODY,
        ),
        Paragraph("（二）因犯罪曾被剥夺政治权利的；", BODY),
        Paragraph("（三）因吸食、注射毒品曾被强制戒毒的；", BODY),
        Paragraph("（四）因卖淫、嫖娼曾被处以行政拘留的。", BODY),
        Paragraph("本人知悉审批机关将向公安部门核查，如有虚假，愿意承担相应的法律责任。", BODY),
        Spacer(1, 6 * mm),
        _grid(
            [["声明人姓名", "身份（投资人、拟任法定代表人或其他负责人）", "公民身份号码", "签字"]]
            + [["", "", "", ""] for _ in range(5)],
            [28, 58, 50, 34],
            header=True,
        ),
        Spacer(1, 8 * mm),
        _sign("声明人（签字）"),
    ]
    _write("yule-changsuo-wu-diwutiao-qingxing-shengming.pdf", "书面声明", story)


def equipment_list() -> None:
    rows = [["序号", "设备设施名称", "规格型号", "数量", "用途或安放位置", "备注"]]
    rows += [[str(i), "", "", "", "", ""] for i in range(1, 16)]
    story = [
        Paragraph(f"单位名称：{BLANK}{BLANK}", BODY),
        Spacer(1, 3 * mm),
        _grid(rows, [12, 42, 30, 14, 44, 28], header=True),
        Spacer(1, 8 * mm),
        _sign("填表人", "单位（盖章）"),
    ]
    _write("zhuyao-shebei-sheshi-qingdan.pdf", "主要设备设施清单", story)


def staff_list() -> None:
    rows = [
        [
            "序号",
            "姓名",
            "性别",
            "公民身份号码",
            "学历及专业",
            "岗位（职务）",
            "资格证书",
            "联系电话",
        ]
    ]
    rows += [[str(i), "", "", "", "", "", "", ""] for i in range(1, 16)]
    story = [
        Paragraph(f"单位名称：{BLANK}{BLANK}", BODY),
        Spacer(1, 3 * mm),
        _grid(rows, [10, 16, 10, 36, 24, 22, 24, 28], header=True),
        Spacer(1, 8 * mm),
        _sign("填表人", "单位（盖章）"),
    ]
    _write("renyuan-mingdan.pdf", "人员名单", story)


# --- 示例图 -------------------------------------------------------------------------------


def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.truetype(FONT_FILE, size)


def _save_png(image: Image.Image, name: str) -> None:
    path = SAMPLES / name
    image.convert("RGB").quantize(colors=32).save(path, optimize=True)
    print(f"{path.relative_to(ROOT)}: {path.stat().st_size // 1024} KB")


def _card(draw: ImageDraw.ImageDraw, box, side: str) -> None:
    x, y, x2, y2 = box
    draw.rounded_rectangle(box, radius=18, fill="#e8eef6", outline="#5b7fa8", width=3)
    if side == "front":
        for i, label in enumerate(
            [
                "姓名  王某某",
                "性别  男    民族  汉",
                "出生  1990 年 1 月 1 日",
                "住址  江苏省常州市武进区……",
            ]
        ):
            draw.text((x + 24, y + 28 + i * 40), label, font=_font(22), fill="#33475b")
        draw.rectangle((x2 - 150, y + 26, x2 - 30, y + 176), fill="#c9d6e5", outline="#8fa7c2")
        draw.text((x2 - 120, y + 88), "人像", font=_font(24), fill="#6b7f95")
        draw.text(
            (x + 24, y2 - 50), "公民身份号码  320412XXXXXXXXXXXX", font=_font(22), fill="#33475b"
        )
    else:
        draw.ellipse((x + 30, y + 26, x + 130, y + 126), outline="#b03a2e", width=4)
        draw.text((x + 160, y + 40), "中华人民共和国", font=_font(30), fill="#33475b")
        draw.text((x + 160, y + 86), "居民身份证", font=_font(38), fill="#33475b")
        draw.text(
            (x + 30, y2 - 86), "签发机关  常州市公安局武进分局", font=_font(22), fill="#33475b"
        )
        draw.text(
            (x + 30, y2 - 50), "有效期限  2020.01.01-2040.01.01", font=_font(22), fill="#33475b"
        )


def id_card_photo_sample() -> None:
    image = Image.new("RGB", (1200, 980), "#ffffff")
    draw = ImageDraw.Draw(image)
    draw.text(
        (40, 28),
        "身份证拍照示例（正反两面各拍一张，或拍在同一张上）",
        font=_font(36),
        fill="#1b1b1b",
    )
    _card(draw, (60, 110, 580, 440), "front")
    _card(draw, (620, 110, 1140, 440), "back")
    draw.text((250, 452), "人像面", font=_font(28), fill="#1b1b1b")
    draw.text((800, 452), "国徽面", font=_font(28), fill="#1b1b1b")
    draw.text(
        (40, 520),
        "✓ 正确：四角完整，平放拍摄，字迹清晰，无反光、无遮挡",
        font=_font(30),
        fill="#0a6b3d",
    )
    # Three small wrong examples: cut off, glare, tilted.
    wrongs = [("× 缺角、拍不全", "cut"), ("× 反光看不清", "glare"), ("× 倾斜、变形", "tilt")]
    for i, (label, kind) in enumerate(wrongs):
        x = 60 + i * 380
        frame = Image.new("RGB", (330, 210), "#ffffff")  # what the camera saw: clips the card
        card = Image.new("RGBA", (260, 165), (0, 0, 0, 0))
        cd = ImageDraw.Draw(card)
        cd.rounded_rectangle(
            (0, 0, 259, 164), radius=12, fill="#e8eef6", outline="#5b7fa8", width=3
        )
        for r in range(4):
            cd.line((18, 28 + r * 30, 165, 28 + r * 30), fill="#8fa7c2", width=8)
        cd.rectangle((188, 22, 242, 96), fill="#c9d6e5")
        if kind == "glare":
            cd.ellipse((50, 15, 210, 150), fill="#ffffff")
        if kind == "tilt":
            card = card.rotate(16, expand=True, resample=Image.Resampling.BICUBIC)
        offset = {"cut": (150, 70), "glare": (35, 22), "tilt": (20, 0)}[kind]
        frame.paste(card, offset, card)
        image.paste(frame, (x, 600))
        draw.rectangle((x, 600, x + 330, 810), outline="#b3261e", width=3)
        draw.text((x + 10, 830), label, font=_font(28), fill="#b3261e")
    draw.text((40, 900), "示例图，人像和号码均为虚构。", font=_font(24), fill="#555555")
    _save_png(image, "shenfenzheng-paizhao-shili.png")


def location_map_sample() -> None:
    image = Image.new("RGB", (1200, 900), "#fbfaf5")
    draw = ImageDraw.Draw(image)
    draw.text((40, 24), "营业场所方位示意图（示例）", font=_font(38), fill="#1b1b1b")
    road = "#d9d4c7"
    draw.rectangle((0, 380, 1200, 450), fill=road)  # east-west road
    draw.rectangle((700, 90, 770, 750), fill=road)  # north-south road
    draw.text((60, 395), "人民中路", font=_font(30), fill="#4d4d4d")
    draw.text((712, 600), "常\n武\n路", font=_font(30), fill="#4d4d4d", spacing=6)
    # The site, and what the catalogue asks to mark around it.
    draw.rectangle((480, 250, 650, 360), fill="#b3261e")
    draw.text((492, 285), "本场所", font=_font(36), fill="#ffffff")
    draw.text((470, 200), "某某路 X 号 1 层", font=_font(24), fill="#1b1b1b")
    draw.rectangle((860, 520, 1100, 700), fill="#cfe3d4", outline="#0a6b3d", width=3)
    draw.text((890, 590), "某某小学", font=_font(32), fill="#0a6b3d")
    draw.line((650, 360, 860, 560), fill="#1a4fa0", width=4)
    draw.text((800, 450), "直线距离约 260 米", font=_font(26), fill="#1a4fa0")
    draw.rectangle((120, 520, 380, 680), fill="#e6e6e6", outline="#8a8d91", width=2)
    draw.text((160, 580), "某某小区", font=_font(30), fill="#4d4d4d")
    # North arrow and scale.
    draw.polygon([(1100, 110), (1080, 170), (1120, 170)], fill="#1b1b1b")
    draw.text((1088, 175), "北", font=_font(28), fill="#1b1b1b")
    draw.line((60, 700, 260, 700), fill="#1b1b1b", width=4)
    draw.text((60, 710), "0　　　100 米", font=_font(22), fill="#1b1b1b")
    draw.text(
        (40, 790),
        "须标明：周边道路及名称、场所位置、与学校等的距离、指北方向",
        font=_font(24),
        fill="#555555",
    )
    draw.text((40, 830), "可手绘后拍照上传，也可用地图截图标注。", font=_font(24), fill="#555555")
    _save_png(image, "fangwei-shiyitu-shili.png")


def main() -> None:
    FORMS.mkdir(parents=True, exist_ok=True)
    SAMPLES.mkdir(parents=True, exist_ok=True)
    for sample in (False, True):
        power_of_attorney(sample)
        getihu_application(sample)
    public_place_hygiene()
    eldercare_commitment()
    entertainment_declaration()
    equipment_list()
    staff_list()
    id_card_photo_sample()
    location_map_sample()


if __name__ == "__main__":
    main()
