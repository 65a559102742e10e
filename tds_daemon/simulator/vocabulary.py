"""The words the simulator's sample objects are made of: products, people, companies, places.

Arabic and English side by side, so that generated names exercise both scripts as a Saudi
organization's data does.
"""

PRODUCTS = [  # (Arabic, English, unit, sku code)
    ("زيت زيتون", "Olive Oil", "ltr", "OIL"), ("أرز بسمتي", "Basmati Rice", "kg", "RICE"),
    ("سكر أبيض", "White Sugar", "kg", "SUG"), ("طحين", "Flour", "kg", "FLR"),
    ("حليب مجفف", "Milk Powder", "g", "MLK"), ("شاي أحمر", "Black Tea", "g", "TEA"),
    ("قهوة عربية", "Arabic Coffee", "g", "COF"), ("تمر سكري", "Sukkari Dates", "kg", "DAT"),
    ("عسل طبيعي", "Natural Honey", "g", "HNY"), ("معكرونة", "Pasta", "g", "PAS"),
    ("معجون طماطم", "Tomato Paste", "g", "TOM"), ("جبنة بيضاء", "White Cheese", "g", "CHS"),
    ("زبدة", "Butter", "g", "BTR"), ("ملح", "Salt", "g", "SLT"), ("عدس أحمر", "Red Lentils", "kg", "LEN"),
    ("حمص", "Chickpeas", "kg", "CHK"), ("فول مدمس", "Fava Beans", "g", "FAV"), ("تونة", "Tuna", "g", "TUN"),
    ("بسكويت", "Biscuits", "g", "BIS"), ("ماء معدني", "Mineral Water", "ltr", "WTR"),
]
SIZES = {"ltr": [("1 لتر", "1L"), ("1.5 لتر", "1.5L"), ("5 لتر", "5L"), ("500 مل", "500ml")],
         "kg": [("1 كغ", "1kg"), ("2 كغ", "2kg"), ("5 كغ", "5kg"), ("10 كغ", "10kg")],
         "g": [("250 غ", "250g"), ("400 غ", "400g"), ("500 غ", "500g"), ("800 غ", "800g")]}
BRANDS = ["Al Marai", "Nadec", "Al Walimah", "Halwani", "Sunbulah", "Goody", "Afia", "Al Alali", "Baladna",
          "Puck", "Americana", "Al Osra"]
CATEGORIES = {"OIL": "Oils", "RICE": "Grains", "SUG": "Baking", "FLR": "Baking", "MLK": "Dairy", "TEA": "Beverages",
              "COF": "Beverages", "DAT": "Dates", "HNY": "Sweeteners", "PAS": "Pasta", "TOM": "Canned",
              "CHS": "Dairy", "BTR": "Dairy", "SLT": "Spices", "LEN": "Legumes", "CHK": "Legumes", "FAV": "Canned",
              "TUN": "Canned", "BIS": "Snacks", "WTR": "Beverages"}
FIRST = [("محمد", "Mohammed"), ("أحمد", "Ahmed"), ("فاطمة", "Fatima"), ("نورة", "Noura"), ("عبدالله", "Abdullah"),
         ("خالد", "Khalid"), ("سارة", "Sara"), ("ريم", "Reem"), ("يوسف", "Yousef"), ("مريم", "Maryam"),
         ("سلمان", "Salman"), ("هند", "Hind"), ("فيصل", "Faisal"), ("لمى", "Lama")]
LAST = [("الحربي", "Al-Harbi"), ("العتيبي", "Al-Otaibi"), ("القحطاني", "Al-Qahtani"), ("الشمري", "Al-Shammari"),
        ("الدوسري", "Al-Dosari"), ("الزهراني", "Al-Zahrani"), ("الغامدي", "Al-Ghamdi"), ("المطيري", "Al-Mutairi"),
        ("السبيعي", "Al-Subaie"), ("العنزي", "Al-Anazi")]
COMPANY_KIND = ["شركة", "مؤسسة", "مجموعة", "متجر"]
COMPANY_KIND_INITIALS = {k[0] for k in COMPANY_KIND}
COMPANY_CORE = [("النور", "Al Noor"), ("الأمل", "Al Amal"), ("الفجر", "Al Fajr"), ("السلام", "Al Salam"),
                ("الرياض", "Riyadh"), ("الخليج", "Gulf"), ("البركة", "Al Baraka"), ("الوفاء", "Al Wafa"),
                ("الهدى", "Al Huda"), ("الصفا", "Al Safa"), ("المدينة", "Madina"), ("الشرق", "Al Sharq"),
                ("الواحة", "Oasis"), ("النخيل", "Palm")]
COMPANY_TRADE = [("للتجارة", "Trading"), ("للتموين", "Catering Supplies"), ("للمواد الغذائية", "Foodstuff"),
                 ("التجارية", "Trading Co."), ("للاستيراد", "Import"), ("للتوزيع", "Distribution")]
CITIES = [("الرياض", "Riyadh"), ("جدة", "Jeddah"), ("الدمام", "Dammam"), ("مكة المكرمة", "Makkah"),
          ("المدينة المنورة", "Madinah"), ("الخبر", "Khobar"), ("أبها", "Abha")]
WAREHOUSES = ["Riyadh Main Warehouse", "Jeddah Warehouse", "Dammam Warehouse"]
PRICE_LISTS = [("قائمة الجملة", "Wholesale"), ("قائمة التجزئة", "Retail"), ("كبار العملاء", "VIP Customers"),
               ("الموزعين", "Distributors"), ("عروض رمضان", "Ramadan Offers"), ("الشركات", "Corporate"),
               ("المطاعم", "Restaurants"), ("الفنادق", "Hotels")]
ADJUST_REASONS = ["Damaged goods", "Stocktaking results", "Expired goods", "Stolen goods", "تلف أثناء النقل",
                  "نتائج الجرد", "انتهاء الصلاحية"]
